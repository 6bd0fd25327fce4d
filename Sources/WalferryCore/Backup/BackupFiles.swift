// The file-system calls walferry-backup makes on paths held as bytes (a data directory's names need
// not be UTF-8): lstat, open, read, readlink, directory listing, durable writes and renames, and
// recursive removal of a partial or expired backup.
//
// Like System/Posix.swift (errno read at once, EINTR retried except on close), and kept apart from it
// because System/ belongs to the archive/restore work in progress; the durable-write helpers here
// (fsyncing a file, then its directory, renaming, then fsyncing the parent) may move to a shared
// System/DurableFile.swift once both sides exist.

import Glibc

/// A path as bytes, for messages: invalid UTF-8 is shown with replacement characters.
func displayPath(_ path: [UInt8]) -> String { String(decoding: path, as: UTF8.self) }

/// `directory/name`.
func joinPath(_ directory: [UInt8], _ name: [UInt8]) -> [UInt8] {
    if directory.isEmpty { return name }
    if directory.last == UInt8(ascii: "/") { return directory + name }
    return directory + [UInt8(ascii: "/")] + name
}

/// Calls `body` with `path` as a NUL-terminated C string.
func withCPath<R>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
    var cString = path.map { CChar(bitPattern: $0) }
    cString.append(0)
    return cString.withUnsafeBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return "".withCString(body) }  // never: count >= 1
        return body(base)
    }
}

/// What lstat(2) says about an entry.
struct EntryStatus: Sendable {
    enum Kind: Sendable { case directory, regular, symlink, other }
    let kind: Kind
    let mode: UInt32  // permission bits only
    let uid: UInt32
    let gid: UInt32
    let size: UInt64
    let mtime: Int64

    init(_ info: stat) {
        switch info.st_mode & S_IFMT {
        case S_IFDIR: kind = .directory
        case S_IFREG: kind = .regular
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        mode = UInt32(info.st_mode & 0o7777)
        uid = UInt32(info.st_uid)
        gid = UInt32(info.st_gid)
        size = info.st_size > 0 ? UInt64(info.st_size) : 0
        mtime = Int64(info.st_mtim.tv_sec)
    }
}

/// lstat(2), or stat(2) with `following`. The corresponding C functions are `lstat` and `stat`.
func entryStatus(_ path: [UInt8], following: Bool = false) throws(Errno) -> EntryStatus {
    var info = stat()
    let result = withCPath(path) { cPath in following ? stat(cPath, &info) : lstat(cPath, &info) }
    if result != 0 { throw Errno.current }
    return EntryStatus(info)
}

/// The names in a directory (not "." and ".."), sorted bytewise so that backups are reproducible.
/// The corresponding C functions are `opendir` and `readdir`.
func directoryNames(_ path: [UInt8]) throws(Errno) -> [[UInt8]] {
    guard let stream = withCPath(path, { opendir($0) }) else { throw Errno.current }
    defer { closedir(stream) }
    var names: [[UInt8]] = []
    while true {
        errno = 0  // readdir returns NULL both at the end and on error; only errno tells them apart
        guard let entry = readdir(stream) else {
            if errno != 0 { throw Errno.current }
            break
        }
        let name = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
            let base = UnsafeRawPointer(tuple).assumingMemoryBound(to: UInt8.self)
            return Array(UnsafeBufferPointer(start: base, count: strlen(UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self))))
        }
        if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
        names.append(name)
    }
    return names.sorted { $0.lexicographicallyPrecedes($1) }
}

/// The target of a symbolic link. The corresponding C function is `readlink`.
func symbolicLinkTarget(_ path: [UInt8]) throws(Errno) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = withCPath(path) { cPath in
        buffer.withUnsafeMutableBufferPointer { out in
            out.withMemoryRebound(to: CChar.self) { chars in
                guard let base = chars.baseAddress else { return -1 }
                return readlink(cPath, base, chars.count)
            }
        }
    }
    if count < 0 { throw Errno.current }
    return Array(buffer[..<count])
}

/// Opens `path` with `flags`, retrying EINTR. The corresponding C function is `open`.
func openPath(_ path: [UInt8], _ flags: Int32, mode: mode_t = 0o600) throws(Errno) -> Int32 {
    while true {
        let fd = withCPath(path) { open($0, flags | O_CLOEXEC, mode) }
        if fd >= 0 { return fd }
        let error = Errno.current
        if error != .interrupted { throw error }
    }
}

/// Reads up to `buffer.count` bytes, fewer only at the end of the file. The corresponding C function
/// is `read`.
func readUpTo(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
    try readFully(fd, into: buffer)
}

/// Reads a whole (small) file, or its first `limit` bytes. The corresponding C functions are `open` and `read`.
func readWholeFile(_ path: [UInt8], limit: Int = 64 << 20) throws(Errno) -> [UInt8] {
    let fd = try openPath(path, O_RDONLY)
    defer { _ = close(fd) }
    var contents: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while contents.count < limit {
        let count = try readInto(&chunk, fd)
        contents.append(contentsOf: chunk[..<count])
        if count < chunk.count { break }
    }
    return contents.count > limit ? Array(contents[..<limit]) : contents
}

/// Fills `buffer` from `fd` (typed throws do not pass through withUnsafeMutableBytes).
func readInto(_ buffer: inout [UInt8], _ fd: Int32) throws(Errno) -> Int {
    var failure: Errno?
    let count = buffer.withUnsafeMutableBytes { raw -> Int in
        do throws(Errno) {
            return try readUpTo(fd, raw)
        } catch {
            failure = error
            return 0
        }
    }
    if let failure { throw failure }
    return count
}

/// Flushes a file's data and metadata to stable storage. The corresponding C function is `fsync`.
func syncDescriptor(_ fd: Int32) throws(Errno) {
    _ = try retryingOnInterrupt { fsync(fd) }
}

/// Flushes a directory's entries (a rename or a new file in it) to stable storage. The corresponding
/// C functions are `open` with O_DIRECTORY and `fsync`.
func syncDirectory(_ path: [UInt8]) throws(Errno) {
    let fd = try openPath(path, O_RDONLY | O_DIRECTORY)
    defer { _ = close(fd) }
    try syncDescriptor(fd)
}

/// Renames `from` to `to`, replacing nothing: fails with EEXIST when `to` exists. The caller holds the
/// output's lock, so no other walferry-backup can create `to` between the check and the rename; Glibc
/// does not export renameat2's RENAME_NOREPLACE to Swift. The corresponding C function is `rename`.
func renameNoReplace(_ from: [UInt8], _ to: [UInt8]) throws(Errno) {
    do throws(Errno) {
        _ = try entryStatus(to)
        throw Errno.fileExists
    } catch .noSuchFileOrDirectory {
        // free: go on
    }
    let renamed = withCPath(from) { cFrom in withCPath(to) { cTo in rename(cFrom, cTo) } }
    if renamed != 0 { throw Errno.current }
}

/// Makes a directory. The corresponding C function is `mkdir`.
func makeDirectory(_ path: [UInt8], mode: mode_t = 0o700) throws(Errno) {
    let result = withCPath(path) { mkdir($0, mode) }
    if result != 0 { throw Errno.current }
}

/// Removes `path` and, when it is a directory, everything below it, without following symbolic links.
/// A missing path is not an error. The corresponding C functions are `lstat`, `unlink` and `rmdir`.
func removeTree(_ path: [UInt8]) throws(Errno) {
    let status: EntryStatus
    do throws(Errno) {
        status = try entryStatus(path)
    } catch .noSuchFileOrDirectory {
        return
    }
    if status.kind == .directory {
        for name in try directoryNames(path) { try removeTree(joinPath(path, name)) }
        let result = withCPath(path) { rmdir($0) }
        if result != 0 && errno != ENOENT { throw Errno.current }
    } else {
        let result = withCPath(path) { unlink($0) }
        if result != 0 && errno != ENOENT { throw Errno.current }
    }
}

/// The directory part of a path ("." for a bare name).
func parentDirectory(_ path: [UInt8]) -> [UInt8] {
    guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return Array(".".utf8) }
    if slash == 0 { return [UInt8(ascii: "/")] }
    return Array(path[..<slash])
}

/// The last component of a path.
func lastComponent(_ path: [UInt8]) -> [UInt8] {
    guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return path }
    return Array(path[(slash + 1)...])
}

/// Seconds since the epoch, for timestamps.
func wallClockSeconds() -> Int64 { Int64(time(nil)) }


/// A UTC broken-down time. The corresponding C function is `gmtime_r`.
func utcComponents(_ seconds: Int64) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
    var value = time_t(seconds)
    var parts = tm()
    gmtime_r(&value, &parts)
    return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec))
}

/// `value` in decimal, left-padded with zeros to `width` digits.
func zeroPadded(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
