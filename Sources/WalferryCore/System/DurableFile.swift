// Durable, atomic, no-overwrite publishing of a file into a directory: the one place where walferry
// makes bytes durable.
//
// Like PostgreSQL's durable_rename (write a temporary file, fsync it, rename, fsync the directory),
// except that:
// - the final step is link(2), which fails with EEXIST instead of replacing an existing file and works
//   on NFS, followed by unlinking the temporary name; so a file is never overwritten, and at no moment
//   is a partial file visible under the final name;
// - on a file system that refuses link(2) (EPERM, EOPNOTSUPP or ENOSYS: CIFS/SMB shares, several NAS
//   exports, some FUSE file systems), the step is renameat2(RENAME_NOREPLACE), which also never
//   replaces; where that is refused too, a rename under a lock with a check first (basic_archive's
//   guarantee: no other walferry replaces the file, as every publisher takes the same lock, but a
//   writer that is not walferry could still be replaced between the check and the rename);
// - the temporary name is fixed per final name (`.NAME.walferry-tmp`), created with O_EXCL and
//   O_NOFOLLOW, and held under flock(2) while it is written: a later run that finds it and can lock it
//   knows its writer is gone and removes it; one that cannot lock it leaves it to its live writer;
// - the temporary entry is registered with Interruption, so a SIGTERM or SIGINT removes it before the
//   process exits.

import CWalferrySystem
import Glibc

/// A directory opened for durable operations on its entries.
public final class DirectoryHandle {
    public let fd: Int32
    public let path: FilePath

    /// Opens `path`, which must be a directory; symbolic links to directories are followed (an archive
    /// is often a link to a mount point). The corresponding C function is `open`.
    public init(path: FilePath) throws(Errno) {
        self.path = path
        fd = try retryingOnInterrupt { path.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } }
    }

    /// Opens the directory `name` inside `parent`, never through a symbolic link. The corresponding C
    /// function is `openat`.
    public init(in parent: DirectoryHandle, _ name: String) throws(Errno) {
        path = parent.path.appending(name)
        fd = try retryingOnInterrupt { openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) }
    }

    deinit { close(fd) }

    /// Makes the directory's entries durable. The corresponding C function is `fsync`.
    public func sync() throws(Errno) {
        try syncDescriptor(fd)
    }

    /// `lstat` of an entry: nil when it does not exist.
    public func status(of name: String) throws(Errno) -> stat? {
        var info = stat()
        if fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 { return info }
        if errno == ENOENT { return nil }
        throw .current
    }

    /// Opens an entry for reading, never through a symbolic link.
    public func openForReading(_ name: String) throws(Errno) -> Int32 {
        // O_NONBLOCK: a FIFO planted under a WAL name must not hang the archiver in open(); it has no
        // effect on regular files.
        try retryingOnInterrupt { openat(fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
    }

    /// Removes an entry (a file); a missing one is not an error.
    public func remove(_ name: String) throws(Errno) {
        if unlinkat(fd, name, 0) != 0 && errno != ENOENT { throw .current }
    }
}

/// Why a file could not be published.
public enum PublishError: Error, Sendable, Equatable {
    /// The final name exists already (link(2) said EEXIST): nothing was replaced.
    case exists
    /// Another live process holds the temporary file for this final name.
    case busy
    case failed(step: String, Errno)
    /// The file is published, but the directory could not be fsynced.
    case directorySync(Errno)
}

/// How a file was published: the strongest way the file system allows.
public enum Publication: String, Sendable {
    /// link(2): atomic, never replaces.
    case link = "link(2)"
    /// renameat2(RENAME_NOREPLACE): atomic, never replaces, where link(2) is refused.
    case renameNoReplace = "renameat2(RENAME_NOREPLACE)"
    /// A lock, a check, then rename(2): never replaces a file another walferry publishes; a file made
    /// by anything else between the check and the rename would be replaced.
    case lockedRename = "a locked check and rename(2)"
}

/// A file being written under a temporary name in its final directory.
public final class TemporaryFile {
    public let directory: DirectoryHandle
    public let finalName: String
    public let temporaryName: String
    public let fd: Int32
    private var published = false

    /// The temporary name used for `finalName`.
    public static func temporaryName(for finalName: String) -> String { "." + finalName + ".walferry-tmp" }

    /// Creates the temporary file with `mode` (before the umask), replacing a stale one left by a writer
    /// that died, and locks it.
    public init(in directory: DirectoryHandle, finalName: String, mode: mode_t) throws(PublishError) {
        self.directory = directory
        self.finalName = finalName
        temporaryName = TemporaryFile.temporaryName(for: finalName)
        fd = try TemporaryFile.createLocked(in: directory, name: temporaryName, access: O_WRONLY, mode: mode)
    }

    /// Creates the temporary entry `name` exclusively (never through a symbolic link), registers it
    /// with Interruption and locks it; a leftover whose writer is gone is removed first. Shared with
    /// ReplacingFile.
    static func createLocked(in directory: DirectoryHandle, name: String, access: Int32, mode: mode_t) throws(PublishError) -> Int32 {
        var attempt = 0
        while true {
            attempt += 1
            // Created and registered under one hold of the registration: an interruption in between
            // would leave a file that nobody knows about.
            let (created, error) = Interruption.whileRegistering { () -> (Int32, Errno) in
                let fd = openat(directory.fd, name, access | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
                let error = Errno.current
                if fd >= 0 { Interruption.register(directoryFD: directory.fd, name: name) }
                return (fd, error)
            }
            if created >= 0 {
                if flock(created, LOCK_EX | LOCK_NB) != 0 {
                    // Someone judged it stale between our create and lock: let them have it.
                    let error = Errno.current
                    close(created)
                    Interruption.unregister()
                    throw .failed(step: "lock", error)
                }
                return created
            }
            guard error == .fileExists, attempt < 3 else { throw .failed(step: "create", error) }
            try removeIfStale(directory: directory, name: name)
        }
    }

    /// Removes a leftover temporary file whose writer is gone: one nobody holds a lock on.
    static func removeIfStale(directory: DirectoryHandle, name: String) throws(PublishError) {
        let old = openat(directory.fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard old >= 0 else {
            if errno == ENOENT { return }  // gone meanwhile
            throw .failed(step: "open stale temporary file", .current)
        }
        defer { close(old) }
        guard flock(old, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { throw .busy }
            throw .failed(step: "lock stale temporary file", .current)
        }
        if unlinkat(directory.fd, name, 0) != 0 && errno != ENOENT {
            throw .failed(step: "remove stale temporary file", .current)
        }
    }

    deinit {
        close(fd)
        if !published { discard() }
    }

    /// Appends bytes. The corresponding C function is `write`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        if let error = writeAll(fd, bytes) { throw error }
    }

    /// Sets the permission bits, whatever the umask. The corresponding C function is `fchmod`.
    public func setMode(_ mode: mode_t) throws(Errno) {
        _ = try retryingOnInterrupt { fchmod(fd, mode) }
    }

    /// Makes the contents durable. The corresponding C function is `fsync`.
    public func sync() throws(Errno) {
        try syncDescriptor(fd)
    }

    /// Asks the kernel to drop the file's cached pages, so that a read that follows comes from the
    /// storage (where the file system allows it: local disks and NFS do). The corresponding C function
    /// is `posix_fadvise`.
    public func dropCache() {
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    /// Opens the temporary file again for reading (for verification).
    public func openForReading() throws(Errno) -> Int32 {
        try directory.openForReading(temporaryName)
    }

    /// Publishes the (synced) file under its final name without ever replacing an existing file, then
    /// removes the temporary name (when it remains) and syncs the directory. Returns how.
    @discardableResult
    public func publish() throws(PublishError) -> Publication {
        let publication = try placeUnderFinalName()
        published = true
        // From here the final name is complete; the rest only tidies up and makes the new entry durable.
        if publication == .link && unlinkat(directory.fd, temporaryName, 0) != 0 && errno != ENOENT {
            throw .failed(step: "remove temporary file", .current)
        }
        Interruption.unregister()
        do throws(Errno) {
            try directory.sync()
        } catch {
            throw .directorySync(error)
        }
        return publication
    }

    /// The step that makes the final name appear, the strongest the file system allows.
    private func placeUnderFinalName() throws(PublishError) -> Publication {
        if linkat(directory.fd, temporaryName, directory.fd, finalName, 0) == 0 { return .link }
        var error = Errno.current
        if error == .fileExists { throw .exists }
        guard Self.isRefusal(error) else { throw .failed(step: "link", error) }

        if walferry_rename_noreplace(directory.fd, temporaryName, directory.fd, finalName) == 0 { return .renameNoReplace }
        error = Errno.current
        if error == .fileExists { throw .exists }
        guard Self.isRefusal(error) || error.rawValue == EINVAL else { throw .failed(step: "rename", error) }

        // Neither: a lock that every walferry publisher of this directory takes, a check, a rename.
        let lock: Int32
        do throws(Errno) {
            lock = try retryingOnInterrupt {
                openat(directory.fd, TemporaryFile.publicationLockName, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            }
        } catch {
            throw .failed(step: "open lock file", error)
        }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            if errno != EINTR { throw .failed(step: "lock", .current) }
        }
        var info = stat()
        if fstatat(directory.fd, finalName, &info, AT_SYMLINK_NOFOLLOW) == 0 { throw .exists }
        if errno != ENOENT { throw .failed(step: "stat", .current) }
        guard renameat(directory.fd, temporaryName, directory.fd, finalName) == 0 else { throw .failed(step: "rename", .current) }
        return .lockedRename
    }

    /// The errors with which a file system says it does not offer an operation at all.
    private static func isRefusal(_ error: Errno) -> Bool {
        [EPERM, EOPNOTSUPP, ENOSYS].contains(error.rawValue)
    }

    /// The lock file taken by the last resort of publishing (a locked check and rename).
    public static let publicationLockName = ".walferry-publish.lock"

    /// Removes the temporary file (on failure paths).
    public func discard() {
        _ = unlinkat(directory.fd, temporaryName, 0)
        Interruption.unregister()
    }
}
