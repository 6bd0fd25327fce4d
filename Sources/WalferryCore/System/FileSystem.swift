// File-system calls on paths (FilePath, bytes): lstat/stat, listing a directory, readlink, open,
// reading a small file whole, fsyncing a directory by path, renaming without replacing, making a
// directory, and removing a tree.
//
// Like Posix.swift's conventions (errno read at once, EINTR retried except on close) for the calls
// that start from a path rather than from an opened directory: walferry-backup walks a data directory
// and writes its output this way. The archive tools work relative to an opened directory instead
// (DurableFile.swift's DirectoryHandle, Posix.swift's Directory), so that no name is resolved twice.

import Glibc

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
func entryStatus(_ path: FilePath, following: Bool = false) throws(Errno) -> EntryStatus {
    var info = stat()
    let result = path.withCString { cPath in following ? stat(cPath, &info) : lstat(cPath, &info) }
    if result != 0 { throw Errno.current }
    return EntryStatus(info)
}

/// The names in a directory (not "." and ".."), sorted bytewise so that backups are reproducible.
/// The corresponding C functions are `opendir` and `readdir`.
func directoryNames(_ path: FilePath) throws(Errno) -> [[UInt8]] {
    guard let stream = path.withCString({ opendir($0) }) else { throw Errno.current }
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
func symbolicLinkTarget(_ path: FilePath) throws(Errno) -> FilePath {
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = path.withCString { cPath in
        buffer.withUnsafeMutableBufferPointer { out in
            out.withMemoryRebound(to: CChar.self) { chars in
                guard let base = chars.baseAddress else { return -1 }
                return readlink(cPath, base, chars.count)
            }
        }
    }
    if count < 0 { throw Errno.current }
    return FilePath(bytes: buffer[..<count])
}

/// Opens `path` with `flags` (O_CLOEXEC added), retrying EINTR. The corresponding C function is `open`.
func openPath(_ path: FilePath, _ flags: Int32, mode: mode_t = 0o600) throws(Errno) -> Int32 {
    try retryingOnInterrupt { path.withCString { open($0, flags | O_CLOEXEC, mode) } }
}

/// Reads a whole (small) file, or its first `limit` bytes. The corresponding C functions are `open` and `read`.
func readWholeFile(_ path: FilePath, limit: Int = 64 << 20) throws(Errno) -> [UInt8] {
    let fd = try openPath(path, O_RDONLY)
    defer { _ = close(fd) }
    return try readAll(fd, limit: limit)
}

/// Flushes a directory's entries (a rename or a new file in it) to stable storage. The corresponding
/// C functions are `open` with O_DIRECTORY and `fsync`.
func syncDirectory(_ path: FilePath) throws(Errno) {
    try DirectoryHandle(path: path).sync()
}

/// Renames `from` to `to`, replacing nothing: fails with EEXIST when `to` exists. The caller holds the
/// output's lock, so no other walferry-backup can create `to` between the check and the rename; Glibc
/// does not export renameat2's RENAME_NOREPLACE to Swift. The corresponding C function is `rename`.
func renameNoReplace(_ from: FilePath, _ to: FilePath) throws(Errno) {
    do throws(Errno) {
        _ = try entryStatus(to)
        throw Errno.fileExists
    } catch .noSuchFileOrDirectory {
        // free: go on
    }
    let renamed = from.withCString { cFrom in to.withCString { cTo in rename(cFrom, cTo) } }
    if renamed != 0 { throw Errno.current }
}

/// Makes a directory. The corresponding C function is `mkdir`.
func makeDirectory(_ path: FilePath, mode: mode_t = 0o700) throws(Errno) {
    let result = path.withCString { mkdir($0, mode) }
    if result != 0 { throw Errno.current }
}

/// Removes `path` and, when it is a directory, everything below it, without following symbolic links.
/// A missing path is not an error. The corresponding C functions are `lstat`, `unlink` and `rmdir`.
func removeTree(_ path: FilePath) throws(Errno) {
    let status: EntryStatus
    do throws(Errno) {
        status = try entryStatus(path)
    } catch .noSuchFileOrDirectory {
        return
    }
    if status.kind == .directory {
        for name in try directoryNames(path) { try removeTree(path.appending(name)) }
        let result = path.withCString { rmdir($0) }
        if result != 0 && errno != ENOENT { throw Errno.current }
    } else {
        let result = path.withCString { unlink($0) }
        if result != 0 && errno != ENOENT { throw Errno.current }
    }
}

/// The canonical absolute path, or nil when it cannot be resolved. The corresponding C function is
/// `realpath`.
func realPath(_ path: FilePath) -> FilePath? {
    guard let resolved = path.withCString({ realpath($0, nil) }) else { return nil }
    defer { free(resolved) }
    return FilePath(String(cString: resolved))
}
