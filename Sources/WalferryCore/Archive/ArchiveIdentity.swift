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
// KnownArchives.swift guards the other danger, an unmounted share that looks like a new archive.

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
