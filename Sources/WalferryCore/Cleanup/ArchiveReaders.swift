// The standbys that read an archive, each with the oldest WAL file it still needs: what lets several
// standbys (and the backups) share one archive and still clean it up.
//
// Like a physical replication slot (a named reader whose position holds WAL back on the server, until
// it is dropped or, with max_slot_wal_keep_size, until it falls too far behind), except that:
// - the readers are recorded in the archive itself, one small text file per reader in the directory
//   `walferry.readers` next to `walferry.identity`, written by walferry-cleanup --reader NAME at every
//   restartpoint (`%r`) and by --register before a new standby starts;
// - a reader's record names the archive's system identifier, and a record of another cluster, or one
//   that is not exactly what walferry writes, is an error that stops a cleanup before it removes
//   anything;
// - a reader that stops reporting holds WAL back only until its expiry (a time, where the server's
//   limit is a size), and is warned about from half of it;
// - every cleanup of an archive that has readers, with or without --reader, takes the lock
//   `walferry.readers/.lock` (flock(2)) from reading the records to its last removal, so two cleanups
//   never decide on records that the other is changing. The kernel releases the lock when its holder
//   dies, however it dies (on NFS: when the client's lock state expires). The lock file is never
//   removed: removing a lock file races with the next process that opens it;
// - run as root (a DBA registering a standby by hand), it gives what it creates to the archive
//   directory's owner, so that the standbys' cleanups, which run as that user, can take the lock and
//   replace the records.
//
//     walferry archive reader 1
//     name: standby-b
//     system identifier: 7712740923202838945
//     oldest kept wal file: 00000001000000000000000A
//     reported at: 1796223000
//
// (The time is seconds since the epoch, from the clock of the host that wrote it.)

import Glibc

/// One reader's record.
public struct ArchiveReader: Sendable, Equatable {
    public let name: String
    public let systemIdentifier: UInt64
    /// The oldest WAL file this reader still needs: a 24-character segment name.
    public let oldestKeptWALFile: String
    /// When it was written, in seconds since the epoch.
    public let reportedAt: Int64

    public init(name: String, systemIdentifier: UInt64, oldestKeptWALFile: String, reportedAt: Int64) {
        self.name = name
        self.systemIdentifier = systemIdentifier
        self.oldestKeptWALFile = oldestKeptWALFile
        self.reportedAt = reportedAt
    }

    /// The record's text.
    public var text: String {
        """
        walferry archive reader 1
        name: \(name)
        system identifier: \(systemIdentifier)
        oldest kept wal file: \(oldestKeptWALFile)
        reported at: \(reportedAt)

        """
    }

    /// Parses a record; nil for anything that is not exactly what `text` writes.
    public init?(text bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 6, lines[0] == "walferry archive reader 1", lines[5].isEmpty else { return nil }
        func value(_ line: Substring, _ key: String) -> Substring? {
            line.hasPrefix(key + ": ") ? line.dropFirst(key.count + 2) : nil
        }
        guard let name = value(lines[1], "name"), ArchiveReaders.isValidName(String(name)),
              let sysid = value(lines[2], "system identifier").flatMap({ UInt64($0) }),
              let position = value(lines[3], "oldest kept wal file"), CleanupRules.isSegmentName(Array(position.utf8)),
              let reported = value(lines[4], "reported at").flatMap({ Int64($0) })
        else { return nil }
        self.init(name: String(name), systemIdentifier: sysid, oldestKeptWALFile: String(position), reportedAt: reported)
    }

    /// True when `self` needs older WAL than `other` does (pg_archivecleanup's order: the timeline is
    /// ignored).
    static func sortsBefore(_ name: String, _ other: String) -> Bool {
        name.utf8.dropFirst(8).lexicographicallyPrecedes(other.utf8.dropFirst(8))
    }
}

/// The `walferry.readers` directory of an archive.
public final class ArchiveReaders {
    public static let directoryName = "walferry.readers"
    public static let lockName = ".lock"
    /// How long a cleanup waits for another one to finish before it gives up, removing nothing.
    public static let lockTimeout: Double = 60

    public let archive: ArchiveDirectory
    let directory: DirectoryHandle

    /// `ARCHIVE/walferry.readers`, for messages.
    public var path: String { archive.path(of: ArchiveReaders.directoryName) }
    /// `ARCHIVE/walferry.readers/NAME`, for messages.
    public func path(of name: String) -> String { path + "/" + name }

    private init(archive: ArchiveDirectory, directory: DirectoryHandle) {
        self.archive = archive
        self.directory = directory
    }

    /// A reader name: 1 to 64 letters, digits, "-", "_" and ".", not starting with "." (no path can be
    /// formed from it, and it cannot collide with the lock or a temporary file).
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), bytes[0] != UInt8(ascii: ".") else { return false }
        return bytes.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }

    /// The failure for a name that `isValidName` refuses.
    public static func invalidName(_ name: String) -> CleanupFailure {
        CleanupFailure(.usage, "invalid reader name \"\(name)\"",
                       hint: "A reader name is 1 to 64 letters, digits, \"-\", \"_\" or \".\", and does not start with \".\".")
    }

    /// Opens the archive's readers directory: nil when it has none (no reader was ever registered).
    public static func open(in archive: ArchiveDirectory) throws(CleanupFailure) -> ArchiveReaders? {
        do {
            return ArchiveReaders(archive: archive, directory: try DirectoryHandle(in: archive.handle, directoryName))
        } catch .noSuchFileOrDirectory {
            return nil
        } catch {
            throw CleanupFailure(.failure, "could not open directory \"\(archive.path(of: directoryName))\": \(error)")
        }
    }

    /// Opens the readers directory, creating it (durably) when the archive has none.
    public static func openOrCreate(in archive: ArchiveDirectory) throws(CleanupFailure) -> ArchiveReaders {
        if let readers = try open(in: archive) { return readers }
        if mkdirat(archive.handle.fd, directoryName, 0o755) != 0 {
            if errno != EEXIST {
                throw CleanupFailure(.failure, "could not create directory \"\(archive.path(of: directoryName))\": \(Errno.current)")
            }
        } else if let (uid, gid) = archiveOwner(archive), fchownat(archive.handle.fd, directoryName, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 {
            throw CleanupFailure(.failure, "could not change the owner of directory \"\(archive.path(of: directoryName))\": \(Errno.current)")
        }
        do {
            try archive.handle.sync()
        } catch {
            throw CleanupFailure(.failure, "could not fsync directory \"\(archive.path)\": \(error)")
        }
        guard let readers = try open(in: archive) else {
            throw CleanupFailure(.failure, "could not open directory \"\(archive.path(of: directoryName))\": \(Errno(ENOENT))")
        }
        return readers
    }

    /// The archive directory's owner, when this process is root and would otherwise create files that
    /// the archive's own user cannot lock or replace.
    static func archiveOwner(_ archive: ArchiveDirectory) -> (uid_t, gid_t)? {
        guard geteuid() == 0 else { return nil }
        var info = stat()
        guard fstat(archive.handle.fd, &info) == 0, info.st_uid != 0 else { return nil }
        return (info.st_uid, info.st_gid)
    }

    // MARK: - The lock

    /// The readers' lock, held until released or until the process ends.
    public final class Lock {
        private var fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { release() }
        /// Releases the lock. The corresponding C function is `close`.
        public func release() {
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    /// Takes the lock, waiting up to `lockTimeout` for another cleanup to finish.
    public func lock() throws(CleanupFailure) -> Lock {
        let lockPath = path(of: ArchiveReaders.lockName)
        let fd: Int32
        do {
            fd = try retryingOnInterrupt {
                openat(directory.fd, ArchiveReaders.lockName, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            }
        } catch {
            throw CleanupFailure(.failure, "could not open lock file \"\(lockPath)\": \(error)")
        }
        let lock = Lock(fd: fd)
        if let (uid, gid) = ArchiveReaders.archiveOwner(archive) { _ = fchown(fd, uid, gid) }
        let deadline = monotonicSeconds() + ArchiveReaders.lockTimeout
        var pause: UInt32 = 1_000
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = Errno.current
            guard error.rawValue == EWOULDBLOCK || error.rawValue == EINTR else {
                throw CleanupFailure(.failure, "could not lock file \"\(lockPath)\": \(error)")
            }
            guard monotonicSeconds() < deadline else {
                throw CleanupFailure(.failure, "could not lock file \"\(lockPath)\": another cleanup held it for \(Int(ArchiveReaders.lockTimeout)) s",
                                     hint: "Nothing was removed. A cleanup that hangs on a stuck mount holds the lock until it ends.")
            }
            usleep(pause)
            pause = min(pause * 2, 100_000)
        }
        return lock
    }

    // MARK: - Records

    /// Every reader's record, by name. A record that cannot be read, is not one walferry writes, or
    /// names another cluster is an error.
    public func records(identity: ArchiveIdentity) throws(CleanupFailure) -> [ArchiveReader] {
        let names: [[UInt8]]
        do {
            names = try directoryNames(directory.path)
        } catch {
            throw CleanupFailure(.failure, "could not read directory \"\(path)\": \(error)")
        }
        var readers: [ArchiveReader] = []
        for raw in names where raw.first != UInt8(ascii: ".") {
            let name = String(decoding: raw, as: UTF8.self)
            guard let reader = try read(name, identity: identity) else { continue }
            readers.append(reader)
        }
        return readers.sorted { $0.name < $1.name }
    }

    /// One reader's record, or nil when there is none of that name.
    public func read(_ name: String, identity: ArchiveIdentity) throws(CleanupFailure) -> ArchiveReader? {
        let fd: Int32
        do {
            fd = try directory.openForReading(name)
        } catch .noSuchFileOrDirectory {
            return nil
        } catch {
            throw CleanupFailure(.failure, "could not open reader file \"\(path(of: name))\": \(error)")
        }
        defer { close(fd) }
        let bytes: [UInt8]
        do {
            bytes = try readAll(fd, limit: 4096)
        } catch {
            throw CleanupFailure(.failure, "could not read reader file \"\(path(of: name))\": \(error)")
        }
        guard let reader = ArchiveReader(text: bytes), reader.name == name else {
            throw CleanupFailure(.failure, "invalid reader file \"\(path(of: name))\"",
                                 hint: "walferry-cleanup writes it. Nothing was removed; forget the reader with --forget-reader and register it again.")
        }
        guard reader.systemIdentifier == identity.systemIdentifier else {
            throw CleanupFailure(.failure, "reader file \"\(path(of: name))\" belongs to another cluster: system identifier \(reader.systemIdentifier), the archive's is \(identity.systemIdentifier)",
                                 hint: "Nothing was removed. Was it copied from another archive? Forget the reader with --forget-reader.")
        }
        return reader
    }

    /// Writes a reader's record, atomically and durably (a reader sees the old record or the new one).
    public func write(_ reader: ArchiveReader) throws(CleanupFailure) {
        let file: ReplacingFile
        do {
            file = try ReplacingFile(in: directory, temporaryFor: reader.name, mode: 0o644)
        } catch {
            throw CleanupFailure(.failure, "could not write reader file \"\(path(of: reader.name))\": \(error)")
        }
        let text = Array(reader.text.utf8)
        do throws(Errno) {
            try text.withUnsafeBytes { buffer in Result { () throws(Errno) in try file.write(buffer) } }.get()
            if let (uid, gid) = ArchiveReaders.archiveOwner(archive), fchown(file.fd, uid, gid) != 0 { throw Errno.current }
        } catch {
            throw CleanupFailure(.failure, "could not write reader file \"\(path(of: reader.name))\": \(error)")
        }
        do {
            try file.replace(reader.name, durable: true)
        } catch {
            throw CleanupFailure(.failure, "could not write reader file \"\(path(of: reader.name))\": \(error)")
        }
    }

    /// Removes a reader's record, durably. False when there was none.
    public func remove(_ name: String) throws(CleanupFailure) -> Bool {
        if unlinkat(directory.fd, name, 0) != 0 {
            if errno == ENOENT { return false }
            throw CleanupFailure(.failure, "could not remove reader file \"\(path(of: name))\": \(Errno.current)")
        }
        do {
            try directory.sync()
        } catch {
            throw CleanupFailure(.failure, "could not fsync directory \"\(path)\": \(error)")
        }
        return true
    }
}
