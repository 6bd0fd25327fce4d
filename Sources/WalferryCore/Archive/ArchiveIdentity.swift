// The archive's identity record: which cluster's WAL an archive holds.
//
// pg_archivecleanup and cp have no such thing; pgBackRest's archive.info is the closest (a stanza's
// system identifier and version, written by stanza-create). walferry writes it the first time a
// segment is archived, as a small text file `walferry.identity` in the archive directory (not a WAL
// name, so no cleanup ever touches it), through the same no-overwrite publishing as the WAL itself:
//
//     walferry archive identity 1
//     system identifier: 7712740923202838945
//     wal segment size: 16777216
//     postgresql version: 15
//
// A segment whose header names another system identifier, segment size or major version is refused.
//
// An archive that is a mount point raises one more danger: when the share is not mounted, the empty
// mount-point directory looks like a new archive, and a cp would fill the local disk with WAL that
// nobody will find. So the first time walferry-archive creates an identity record for an archive
// directory, it also notes that directory in the data directory (`walferry.archives`, one absolute
// path a line; archive_command runs in the data directory). Later, an archive directory that the data
// directory knows but that has no identity record is refused, naming the likely cause (the share is
// not mounted), until the DBA removes the line to start a new archive there on purpose.

import Glibc

/// The cluster an archive belongs to.
public struct ArchiveIdentity: Sendable, Equatable, CustomStringConvertible {
    public static let fileName = "walferry.identity"

    public let systemIdentifier: UInt64
    public let segmentSize: WALSegmentSize
    public let postgresVersion: Int

    public init(systemIdentifier: UInt64, segmentSize: WALSegmentSize, postgresVersion: Int) {
        self.systemIdentifier = systemIdentifier
        self.segmentSize = segmentSize
        self.postgresVersion = postgresVersion
    }

    public init(_ facts: WALSegmentFacts) {
        self.init(systemIdentifier: facts.systemIdentifier, segmentSize: facts.segmentSize, postgresVersion: facts.postgresVersion)
    }

    /// The record's text.
    public var text: String {
        """
        walferry archive identity 1
        system identifier: \(systemIdentifier)
        wal segment size: \(segmentSize.bytes)
        postgresql version: \(postgresVersion)

        """
    }

    /// Parses a record; nil for anything that is not exactly what `text` writes.
    public init?(text bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 5, lines[0] == "walferry archive identity 1", lines[4].isEmpty else { return nil }
        func value(_ line: Substring, _ key: String) -> UInt64? {
            guard line.hasPrefix(key + ": ") else { return nil }
            return UInt64(line.dropFirst(key.count + 2))
        }
        guard let sysid = value(lines[1], "system identifier"),
              let size = value(lines[2], "wal segment size").flatMap({ WALSegmentSize(bytes: $0) }),
              let version = value(lines[3], "postgresql version"), version >= 9, version < 1000
        else { return nil }
        self.init(systemIdentifier: sysid, segmentSize: size, postgresVersion: Int(version))
    }

    /// "system identifier 7712740923202838945, PostgreSQL 15, 16 MB segments"
    public var description: String {
        "system identifier \(systemIdentifier), PostgreSQL \(postgresVersion == 9 ? "9.6" : String(postgresVersion)), \(segmentSize) segments"
    }
}

/// The archive directories this data directory has started (see the file header): the file
/// `walferry.archives` in the working directory, when that is a data directory.
public enum KnownArchives {
    public static let fileName = "walferry.archives"

    /// True when the working directory is a PostgreSQL data directory (archive_command's case).
    public static var workingDirectoryIsDataDirectory: Bool {
        var info = stat()
        return stat("PG_VERSION", &info) == 0 && stat("global/pg_control", &info) == 0
    }

    /// The absolute form of `path` without resolving symbolic links: an unmounted mount point must
    /// still match the path that was noted when it was mounted.
    public static func absolute(_ path: String) -> String { absolutePath(path) }

    /// The noted archive directories (empty when the file does not exist or cannot be read).
    public static func read() -> [String] {
        let fd = open(fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Adds `directory` to the file (append, then fsync the file; it is created with mode 0600).
    public static func note(_ directory: String) throws(Errno) {
        let fd = try retryingOnInterrupt { open(fileName, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(fd) }
        var line = directory + "\n"
        if let error = line.withUTF8({ writeAll(fd, UnsafeRawBufferPointer($0)) }) { throw error }
        _ = try retryingOnInterrupt { fsync(fd) }
    }
}
