// The few POSIX calls walferry makes, with errno turned into a Swift error.
//
// Like swift-system's Errno and valueOrErrno, but without the dependency: walferry needs a dozen
// calls, several of which (unlinkat, fdopendir, fsync) swift-system 1.8 does not offer. errno is read
// right after the call, before anything else can run and change it. EINTR is retried everywhere
// except close(2), where Linux has already released the descriptor and a retry could close another.

import Glibc

/// A C `errno` value; its description is `strerror`'s text, as PostgreSQL's `%m` prints it.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's current errno.
    public static var current: Errno { Errno(errno) }

    public static let noSuchFileOrDirectory = Errno(ENOENT)
    public static let interrupted = Errno(EINTR)
    public static let isDirectory = Errno(EISDIR)
    public static let notDirectory = Errno(ENOTDIR)
    public static let permissionDenied = Errno(EACCES)
    public static let fileExists = Errno(EEXIST)

    public var description: String {
        guard let text = strerror(rawValue) else { return "error \(rawValue)" }
        return String(cString: text)
    }
}

/// Runs `call` until it does not fail with EINTR; throws errno when it returns -1.
@inline(__always)
func retryingOnInterrupt(_ call: () -> Int32) throws(Errno) -> Int32 {
    while true {
        let result = call()
        if result != -1 { return result }
        let error = Errno.current
        if error != .interrupted { throw error }
    }
}

/// What `stat(2)` says a path is, following symbolic links.
public enum FileType: Sendable {
    case directory, regular, other
}

/// The type of the file at `path`, following symbolic links. The corresponding C function is `stat`.
public func fileType(atPath path: FilePath) throws(Errno) -> FileType {
    var info = stat()
    _ = try retryingOnInterrupt { path.withCString { stat($0, &info) } }
    switch info.st_mode & S_IFMT {
    case S_IFDIR: return .directory
    case S_IFREG: return .regular
    default: return .other
    }
}

/// An open directory that is read entry by entry and whose entries are removed relative to it.
///
/// Working through the directory's own descriptor (unlinkat, fstatat) means an entry name is never
/// resolved through a path again: a symbolic link or a rename elsewhere on the path cannot redirect a
/// removal out of the directory that was opened.
public final class Directory {
    private var stream: OpaquePointer?
    /// The path as the caller gave it, for messages.
    public let path: FilePath

    /// Opens `path`, which must be a directory. The corresponding C functions are `open` and `fdopendir`.
    public init(path: FilePath) throws(Errno) {
        self.path = path
        let fd = try retryingOnInterrupt { path.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } }
        guard let stream = fdopendir(fd) else {
            let error = Errno.current
            _ = Glibc.close(fd)
            throw error
        }
        self.stream = stream
    }

    deinit {
        if let stream { closedir(stream) }
    }

    /// One entry. Its name points into readdir's buffer: valid only during the callback that receives
    /// it, which must not keep it.
    public struct Entry {
        /// The name's bytes, without the terminating NUL (which follows them in memory). Not necessarily
        /// valid UTF-8.
        public let name: UnsafeBufferPointer<UInt8>
        /// `d_type`: DT_UNKNOWN on file systems that do not fill it in.
        let type: UInt8
    }

    /// Calls `body` for each entry but "." and "..", in the order readdir returns them.
    /// Throws the errno of a failed readdir (PostgreSQL's "could not read" case). The corresponding C
    /// function is `readdir`.
    public func forEachEntry<E: Error>(_ body: (Entry) throws(E) -> Void) throws(DirectoryReadError<E>) {
        guard let stream else { throw .read(.init(EBADF)) }
        while true {
            errno = 0  // readdir returns NULL both at the end and on error; only errno tells them apart
            guard let entry = readdir(stream) else {
                if errno != 0 { throw .read(.current) }
                return
            }
            let type = entry.pointee.d_type
            try withUnsafePointer(to: &entry.pointee.d_name) { (tuple) throws(DirectoryReadError<E>) in
                let base = UnsafeRawPointer(tuple).assumingMemoryBound(to: UInt8.self)
                let length = strlen(UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self))
                let name = UnsafeBufferPointer(start: base, count: length)
                if length == 1 && name[0] == UInt8(ascii: ".") { return }
                if length == 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".") { return }
                do throws(E) {
                    try body(Entry(name: name, type: type))
                } catch {
                    throw .body(error)
                }
            }
        }
    }

    /// True when the entry is a directory (not a symbolic link to one). Asks the file system only when
    /// readdir did not say. The corresponding C function is `fstatat` with AT_SYMLINK_NOFOLLOW.
    public func isDirectory(_ entry: Entry) -> Bool {
        if entry.type != UInt8(DT_UNKNOWN) { return entry.type == UInt8(DT_DIR) }
        guard let stream else { return false }
        var info = stat()
        let fd = dirfd(stream)
        let found = entry.name.withMemoryRebound(to: CChar.self) { name -> Bool in
            // d_name is NUL-terminated in place, so its base address is a C string.
            guard let cName = name.baseAddress else { return false }
            return fstatat(fd, cName, &info, AT_SYMLINK_NOFOLLOW) == 0
        }
        return found && info.st_mode & S_IFMT == S_IFDIR
    }

    /// Removes the entry (a file or a symbolic link itself; never a directory, for which Linux answers
    /// EISDIR). The corresponding C function is `unlinkat`.
    public func removeFile(_ entry: Entry) throws(Errno) {
        guard let stream else { throw Errno(EBADF) }
        let fd = dirfd(stream)
        let result: Int32 = entry.name.withMemoryRebound(to: CChar.self) { name in
            guard let cName = name.baseAddress else { errno = EINVAL; return -1 }
            return unlinkat(fd, cName, 0)
        }
        if result != 0 { throw Errno.current }
    }

    /// Closes the directory, reporting a failure (PostgreSQL's "could not close" case). The corresponding
    /// C function is `closedir`.
    public func close() throws(Errno) {
        guard let stream else { return }
        self.stream = nil
        if closedir(stream) != 0 { throw Errno.current }
    }
}

/// Why `Directory.forEachEntry` stopped early: readdir failed, or the body threw.
public enum DirectoryReadError<Body: Error>: Error {
    case read(Errno)
    case body(Body)
}
