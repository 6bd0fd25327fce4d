// A PostgreSQL data directory, as the tools meet one: the working directory of archive_command and
// restore_command, or walferry-backup's -D.
//
// Like pg_controldata's first lines, reading only what walferry compares: PG_VERSION's major version
// and pg_control's system identifier (ControlFileData's first field, a uint64 in the server's byte
// order, in every version: src/include/catalog/pg_control.h). Nothing here checks pg_control's CRC;
// a torn pg_control is the server's business, and the identifier is only ever compared with another.

import Glibc

/// A data directory, by path.
public struct DataDirectory: Sendable {
    /// The directory; empty for the working directory, so that the names below stay relative
    /// ("global/pg_control"), as the messages print them.
    public let path: FilePath

    public init(path: FilePath) { self.path = path }

    /// The working directory (archive_command's and restore_command's is the data directory).
    public static let working = DataDirectory(path: FilePath(bytes: []))

    /// `PG_VERSION`'s path.
    public var versionFile: FilePath { path.appending("PG_VERSION") }
    /// `global/pg_control`'s path.
    public var controlFile: FilePath { path.appending("global/pg_control") }

    /// True when both PG_VERSION and global/pg_control exist: the directory is a data directory.
    public var isDataDirectory: Bool {
        (try? entryStatus(versionFile, following: true)) != nil && (try? entryStatus(controlFile, following: true)) != nil
    }

    /// The major version PG_VERSION names ("15", "9.6"): its first line.
    public func majorVersion() throws(Errno) -> String {
        String(decoding: try readWholeFile(versionFile, limit: 64), as: UTF8.self)
            .split(separator: "\n").first.map(String.init) ?? ""
    }

    /// The system identifier in pg_control. Throws EIO when the file is shorter than 8 bytes.
    public func systemIdentifier() throws(Errno) -> UInt64 {
        let bytes = try readWholeFile(controlFile, limit: 8)
        guard bytes.count == 8 else { throw Errno(EIO) }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
}
