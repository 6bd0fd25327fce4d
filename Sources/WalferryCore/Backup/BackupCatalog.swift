// The backups walferry-backup wrote: which ones are complete, what each holds and what it needs.
// Shared by walferry-backup's retention, walferry-check and walferry-recover.
//
// Like pgBackRest's backup.info (the list of backups, each with its start and stop WAL, timeline and
// time) and Barman's `list-backups`, except that there is no catalogue file to keep in step: the
// output directory is the catalogue. A backup is complete when its timestamped directory exists
// (BackupOutput.swift renames it into place only once every file was fsynced) and holds a
// backup_manifest; everything else about it comes from that manifest, parsed and checksum-verified
// (BackupManifestReader.swift). A single tarball (`walferry-backup -o FILE` or `-o -`) carries its
// manifest as its last member, so it is read while the tarball streams (BackupTarballReader.swift).

/// Why a backup could not be listed, read or verified. Each tool maps the kind to its own exit status.
public struct BackupProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A file of the backup could not be opened or read (the errno is in the message).
        case unreadable
        /// The backup's content is wrong: a damaged manifest, tarball or compressed stream, a file
        /// whose size or checksum differs from the manifest, a file missing or unexpected.
        case damaged
        /// The consumer of the entries failed (for walferry-recover, writing the data directory).
        case output
        /// The consumer asked to stop (a signal).
        case interrupted
    }

    public var kind: Kind
    /// One line in PostgreSQL's style: `could not read file "x": reason`.
    public var message: String
    public var hints: [String]

    public init(_ kind: Kind, _ message: String, hints: [String] = []) {
        self.kind = kind
        self.message = message
        self.hints = hints
    }

    public var description: String { message }
}

/// One tarball of a backup.
public struct BackupTarball: Sendable, Equatable {
    public let path: FilePath
    /// The tablespace's OID for `<oid>.tar.bz2`; nil for base.tar.bz2 or a single tarball.
    public let tablespaceOID: String?

    /// Where this tarball's entries go, relative to the restored data directory, in backup_manifest
    /// paths: "" for the data directory itself, "pg_tblspc/<oid>/" for a tablespace.
    public var manifestPrefix: [UInt8] {
        tablespaceOID.map { Array("pg_tblspc/\($0)/".utf8) } ?? []
    }
}

/// A complete backup found in a walferry-backup output directory, or a single tarball.
public struct CatalogedBackup: Sendable {
    /// The backup's name: its directory's (a UTC start time, "20250131T235959Z"), or the tarball's
    /// file name.
    public let id: String
    /// The backup directory, or the single tarball.
    public let path: FilePath
    /// The tarballs, base.tar.bz2 first (listed even when it is missing: reading it then fails), then
    /// the tablespaces' in OID order.
    public let tarballs: [BackupTarball]
    /// The verified manifest; nil for a single tarball, whose manifest is its last member.
    public let manifest: ParsedBackupManifest?

    public var isSingleTarball: Bool { manifest == nil }

    /// The start time encoded in the directory's name, seconds since the epoch; nil for a tarball.
    public var nameTime: Int64? { parseBackupDirectoryTime(id) }

    /// When the backup stopped: from its manifest (backup_label's Last-Modified), else its name.
    public var stopTime: Int64? { manifest?.stopTime ?? nameTime }

    /// Reads the backup at `path`: a backup directory (holding backup_manifest and base.tar.bz2) or a
    /// single tarball. The manifest is parsed and its checksum verified.
    public init(at path: FilePath) throws(BackupProblem) {
        let status: EntryStatus
        do {
            status = try entryStatus(path, following: true)
        } catch {
            throw BackupProblem(.unreadable, "could not access backup \"\(path)\": \(error)")
        }
        id = String(decoding: path.lastComponent, as: UTF8.self)
        self.path = path
        if status.kind == .regular {
            tarballs = [BackupTarball(path: path, tablespaceOID: nil)]
            manifest = nil
            return
        }
        let manifestPath = path.appending("backup_manifest")
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(manifestPath, limit: 1 << 30)
        } catch {
            throw BackupProblem(.unreadable, "could not read file \"\(manifestPath)\": \(error)")
        }
        manifest = try ParsedBackupManifest(parsing: bytes, name: manifestPath.description)
        let names: [[UInt8]]
        do {
            names = try directoryNames(path)
        } catch {
            throw BackupProblem(.unreadable, "could not read directory \"\(path)\": \(error)")
        }
        let suffix = Array(".tar.bz2".utf8)
        var spaces: [String] = []
        for name in names where name.count > suffix.count && name.suffix(suffix.count).elementsEqual(suffix) {
            let stem = name.dropLast(suffix.count)
            if stem.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                spaces.append(String(decoding: stem, as: UTF8.self))
            }
        }
        spaces.sort { ($0.count, $0) < ($1.count, $1) }
        tarballs = [BackupTarball(path: path.appending("base.tar.bz2"), tablespaceOID: nil)]
            + spaces.map { BackupTarball(path: path.appending("\($0).tar.bz2"), tablespaceOID: $0) }
    }

    /// The first WAL segment the backup needs (its start), given the cluster's segment size.
    public func startSegment(segmentSize: UInt64) -> String? {
        guard let manifest else { return nil }
        return walSegmentName(timeline: manifest.walRanges[0].timeline, lsn: manifest.startLSN, segmentSize: segmentSize)
    }

    /// The WAL segments a recovery from this backup needs to reach consistency: start to stop.
    public func segmentsNeeded(segmentSize: UInt64) -> [String]? {
        guard let manifest else { return nil }
        return walSegmentsNeeded(timeline: manifest.timeline, startLSN: manifest.startLSN, stopLSN: manifest.endLSN,
                                 segmentSize: segmentSize)
    }
}

/// The complete backups in `directory`, oldest first: directories named by `backupDirectoryName` that
/// hold a backup_manifest. Names only; `catalogBackups(in:)` reads them.
public func completeBackups(in directory: String) throws(BackupProblem) -> [String] {
    let root = FilePath(directory)
    let names: [[UInt8]]
    do {
        names = try directoryNames(root)
    } catch {
        throw BackupProblem(.unreadable, "could not read directory \"\(directory)\": \(error)")
    }
    return names.filter { name in
        guard isBackupDirectoryName(name) else { return false }
        let manifest = root.appending(name).appending("backup_manifest")
        return (try? entryStatus(manifest))?.kind == .regular
    }.map { String(decoding: $0, as: UTF8.self) }.sorted { backupSortKey($0) < backupSortKey($1) }
}

/// The complete backups in `directory`, oldest first, each read (`CatalogedBackup.init(at:)`). A
/// backup whose manifest cannot be read or is damaged makes the whole listing fail, naming it:
/// choosing among backups while one of them is broken would hide the damage.
public func catalogBackups(in directory: String) throws(BackupProblem) -> [CatalogedBackup] {
    var result: [CatalogedBackup] = []
    for name in try completeBackups(in: directory) {
        result.append(try CatalogedBackup(at: FilePath(directory).appending(name)))
    }
    return result
}

/// Sorts "…Z", "…Z-2", "…Z-10" in the order they were made.
private func backupSortKey(_ name: String) -> (String, Int) {
    let parts = name.split(separator: "-", maxSplits: 1)
    return (String(parts.first ?? ""), parts.count == 2 ? Int(parts[1]) ?? 0 : 1)
}

/// The time a backup directory's name encodes ("20250131T235959Z", optionally "-N"), in seconds.
func parseBackupDirectoryTime(_ name: String) -> Int64? {
    let bytes = Array(name.utf8)
    guard isBackupDirectoryName(bytes) else { return nil }
    func number(_ range: Range<Int>) -> Int64 { Int64(String(decoding: bytes[range], as: UTF8.self)) ?? 0 }
    return daysFromCivil(year: number(0..<4), month: number(4..<6), day: number(6..<8)) * 86400
        + number(9..<11) * 3600 + number(11..<13) * 60 + number(13..<15)
}

/// The first WAL segment the backup in `backupDirectory` needs, from its verified manifest's WAL
/// range and the cluster's segment size; nil when the manifest cannot be read or is damaged.
public func oldestNeededWALFile(backupDirectory: FilePath, segmentSize: UInt64) -> String? {
    (try? CatalogedBackup(at: backupDirectory))?.startSegment(segmentSize: segmentSize)
}
