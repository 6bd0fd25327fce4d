// Path strings as the tools receive them from the server's command lines: split into directory and
// file name, and made absolute against the working directory. Like dirname/basename and realpath,
// except that symbolic links are never resolved: an unmounted mount point must keep the path it had
// when it was mounted (KnownArchives.swift).

import Glibc

/// The last path component, and what comes before it ("." when nothing does, "/" for the root).
func splitPath(_ path: String) -> (directory: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let directory = String(path[..<slash])
    return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
}

/// `path` made absolute against the working directory, without resolving symbolic links; leading
/// "./" components are dropped. Returned as given when the working directory cannot be read.
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var rest = Substring(path)
    while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
    return cwd == "/" ? "/" + rest : cwd + "/" + rest
}
