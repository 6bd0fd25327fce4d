// The archive directory as every tool sees it: opened once, its identity record read or created, a
// WAL name's forms looked for in their order, and each file opened without being fooled by what else
// may sit under a WAL name.
//
// Like pgBackRest's command/archive/common.c and find.c, which push and get share, except that the
// archive is a plain directory of `%f` and `%f.bz2` files that cp and bunzip2 can read:
// - a WAL file is in the archive in one of two forms, plain or `.bz2`; every reader looks for both,
//   the form it was asked for first (`candidates(for:compressedFirst:)`);
// - a member is opened relative to the directory's descriptor, never through a symbolic link, and
//   without blocking on a FIFO; anything but a regular file is refused after fstat;
// - the identity record (ArchiveIdentity.swift) is read by every tool and created by walferry-archive,
//   published as the WAL is (DurableFile.swift: link(2), never replacing).
// The messages are each tool's own: this file reports what happened, the tools say it in their words.

import Glibc

/// An archive directory, opened.
public final class ArchiveDirectory {
    public let handle: DirectoryHandle
    /// The path as the user gave it, for messages.
    public let path: String

    /// Opens the archive directory at `path` (a symbolic link to a mount point is followed).
    public init(path: String) throws(Errno) {
        self.path = path
        handle = try DirectoryHandle(path: FilePath(path))
    }

    /// `path/name`, for messages.
    public func path(of name: String) -> String { "\(path)/\(name)" }

    // MARK: - The forms of a WAL file

    /// The names under which `name` (without compression suffix) may be archived, in the order to look
    /// for them: plain then `.bz2`, or `.bz2` first when that form was asked for.
    public static func candidates(for name: String, compressedFirst: Bool) -> [String] {
        compressedFirst ? [name + ".bz2", name] : [name, name + ".bz2"]
    }

    // MARK: - Members

    /// Opens a member for reading: never through a symbolic link, and without blocking on a FIFO
    /// (DirectoryHandle.openForReading).
    public func open(_ name: String) throws(Errno) -> Int32 {
        try handle.openForReading(name)
    }

    /// A member opened for reading, known to be a regular file; closed when released.
    public final class Member {
        public let fd: Int32
        public let size: UInt64
        init(fd: Int32, size: UInt64) {
            self.fd = fd
            self.size = size
        }
        deinit { close(fd) }
    }

    /// Why a member could not be opened.
    public enum MemberError: Error, Equatable {
        case open(Errno)
        case stat(Errno)
        case notRegular
    }

    /// Opens `name` for a sequential read: nil when it does not exist, an error when it exists but
    /// cannot be opened or is not a regular file.
    public func openMember(_ name: String) throws(MemberError) -> Member? {
        let fd: Int32
        do {
            fd = try open(name)
        } catch .noSuchFileOrDirectory {
            return nil
        } catch {
            throw .open(error)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = Errno.current
            close(fd)
            throw .stat(error)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .notRegular
        }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        return Member(fd: fd, size: UInt64(info.st_size))
    }

    /// True when the directory holds at least one file with a WAL name, in either form: an archive
    /// something wrote, as opposed to an empty mount point. Reads the directory up to the first one.
    public func holdsWALFiles() throws(Errno) -> Bool {
        struct Found: Error {}
        let listing = try Directory(path: FilePath(path))
        do throws(DirectoryReadError<Found>) {
            try listing.forEachEntry { (entry) throws(Found) in
                if WALFileName(bytes: entry.name) != nil { throw Found() }
            }
        } catch {
            switch error {
            case .read(let errno): throw errno
            case .body: return true
            }
        }
        return false
    }

    /// The note an archive keeps of how its files are published, where link(2) is refused.
    public static let publicationNoteName = ".walferry-publication"

    /// Notes `publication` in the archive, unless a note is there already. True when it was written
    /// now: the first time this archive's files were published that way. Best effort: a note that
    /// cannot be written is tried again with the next file.
    public func notePublication(_ publication: Publication) -> Bool {
        let fd = openat(handle.fd, ArchiveDirectory.publicationNoteName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var text = "published with \(publication.rawValue)\n"
        _ = text.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
        return true
    }

    // MARK: - The identity record

    /// Why the identity record could not be read.
    public enum IdentityError: Error, Equatable, CustomStringConvertible {
        /// There is no record.
        case missing
        /// The file is not a record walferry-archive writes.
        case invalid
        /// `step` ("open", "read") failed.
        case io(step: String, Errno)

        public var description: String {
            switch self {
            case .missing: "no identity record"
            case .invalid: "invalid identity record"
            case .io(let step, let errno): "could not \(step) it: \(errno)"
            }
        }
    }

    /// The identity record's path, for messages.
    public var identityPath: String { path(of: ArchiveIdentity.fileName) }

    /// Reads `walferry.identity`.
    public func readIdentity() throws(IdentityError) -> ArchiveIdentity {
        let fd: Int32
        do {
            fd = try open(ArchiveIdentity.fileName)
        } catch .noSuchFileOrDirectory {
            throw .missing
        } catch {
            throw .io(step: "open", error)
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count: Int
        do throws(Errno) {
            count = try bytes.withUnsafeMutableBytes { buffer in Result { () throws(Errno) in try readFully(fd, into: buffer) } }.get()
        } catch {
            throw .io(step: "read", error)
        }
        guard let identity = ArchiveIdentity(text: Array(bytes[..<count])) else { throw .invalid }
        return identity
    }

    /// Why the identity record could not be created.
    public enum IdentityCreationError: Error {
        /// Publishing failed (`.exists` never reaches the caller: see `createIdentity`).
        case publish(PublishError)
        /// Writing or syncing the temporary file failed.
        case write(temporaryName: String, Errno)
    }

    /// Creates `walferry.identity` for `identity`, durably and without replacing a record that exists.
    /// Returns how it was published (the way every file of this archive will be), or nil when another
    /// process created one first: the caller reads and compares theirs.
    public func createIdentity(_ identity: ArchiveIdentity) throws(IdentityCreationError) -> Publication? {
        let record: TemporaryFile
        do {
            record = try TemporaryFile(in: handle, finalName: ArchiveIdentity.fileName, mode: 0o644)
        } catch {
            throw .publish(error)
        }
        let text = Array(identity.text.utf8)
        do throws(Errno) {
            // (withUnsafeBytes rethrows untyped errors; the Result carries the Errno through.)
            try text.withUnsafeBytes { buffer in Result { () throws(Errno) in try record.write(buffer) } }.get()
            try record.setMode(0o644)
            try record.sync()
        } catch {
            throw .write(temporaryName: record.temporaryName, error)
        }
        do {
            return try record.publish()
        } catch .exists {
            return nil
        } catch {
            throw .publish(error)
        }
    }
}

/// The failure every tool reports for an identity record that is not one walferry-archive writes.
func invalidIdentityRecord<Status: ToolExitStatus>(_ archive: ArchiveDirectory, status: Status) -> ToolFailure<Status> {
    ToolFailure(status, "invalid archive identity record \"\(archive.identityPath)\"",
                hint: "It is written by walferry-archive; if it was edited by hand, restore it from a copy.")
}
