// walferry-check's backup checks: the newest complete backup's age and the count, every backup whole
// (its backup_manifest and its tarballs), and the WAL each backup needs in the archive.
//
// Like check_pgbackrest's `retention` and `archives` services and Barman's `minimum redundancy` and
// `backup maximum age` checks, on walferry-backup's directory of backups (Backup/BackupOutput.swift
// names them, Backup/BackupRetention.swift lists the complete ones and reads their WAL range). Nothing
// here writes to the backups.

import Glibc

/// The checks this file makes, in order.
public let backupCheckNames = ["backups.newest", "backups.complete", "backups.wal", "backups.deep"]

/// A backup directory, read once.
public struct BackupDirectoryFacts: Sendable {
    public var path: String
    /// Why the directory could not be read, when it could not.
    public var problem: String?
    /// The complete backups, oldest first.
    public var complete: [String] = []
    /// Backup-named directories without a backup_manifest.
    public var incomplete: [String] = []
    /// The first segment the oldest complete backup needs, when the segment size is known.
    public var oldestStart: WALFileName?
}

/// Reads the backup directory: its complete and incomplete backups, and the oldest one's start.
public func readBackupDirectory(_ path: String, segmentSize: WALSegmentSize?) -> BackupDirectoryFacts {
    var facts = BackupDirectoryFacts(path: path)
    let names: [[UInt8]]
    do {
        names = try directoryNames(FilePath(path))
        facts.complete = try completeBackups(in: path)
    } catch {
        facts.problem = "could not read backup directory \"\(path)\": \(error)"
        return facts
    }
    facts.incomplete = names.filter(isBackupDirectoryName).map { String(decoding: $0, as: UTF8.self) }
        .filter { !facts.complete.contains($0) }.sorted()
    if let oldest = facts.complete.first,
       let range = manifestWALRange(backupDirectory: FilePath(path).appending(oldest)) {
        let size = segmentSize ?? .default
        facts.oldestStart = WALFileName(timeline: range.timeline, segmentNumber: range.start / UInt64(size.bytes), segmentSize: size)
    }
    return facts
}

/// What the backup checks were asked.
public struct BackupCheckRequest: Sendable {
    public var path: String
    public var facts: BackupDirectoryFacts
    public var archive: String?
    public var archiveListing: ArchiveListing?
    public var segmentSize: WALSegmentSize?
    public var thresholds = CheckThresholds()
    public var deep = false
    /// The time to measure ages against, in seconds since the epoch.
    public var now: Double = 0

    public init(path: String, facts: BackupDirectoryFacts) {
        self.path = path
        self.facts = facts
    }
}

/// The start time of a backup from its directory name ("20250131T235959Z", "…Z-2"), in seconds since
/// the epoch.
public func backupStartTime(_ name: String) -> Double? {
    let bytes = Array(name.utf8)
    guard isBackupDirectoryName(bytes) else { return nil }
    func number(_ range: Range<Int>) -> Int32? { Int32(String(decoding: bytes[range], as: UTF8.self)) }
    guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
          let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15) else { return nil }
    var parts = tm()
    parts.tm_year = year - 1900
    parts.tm_mon = month - 1
    parts.tm_mday = day
    parts.tm_hour = hour
    parts.tm_min = minute
    parts.tm_sec = second
    return Double(timegm(&parts))
}

/// backups.newest, backups.complete, backups.wal and backups.deep.
public func runBackupChecks(_ request: BackupCheckRequest) -> [CheckResult] {
    let labels = [("backups", request.path)]
    let facts = request.facts
    if let problem = facts.problem {
        return [CheckResult("backups.newest", .critical, problem, hints: ["Is the backups' share mounted, and readable by this user?"], labels: labels)]
            + backupCheckNames.dropFirst().map { CheckResult($0, .skipped, "the backup directory could not be read", labels: labels) }
    }
    var checks: [CheckResult] = []

    // The newest complete backup, and the count.
    let count = facts.complete.count
    if let newest = facts.complete.last, let started = backupStartTime(newest) {
        let age = max(0, request.now - started)
        let threshold = request.thresholds.backupAge
        var status = threshold.judge(age)
        if count < request.thresholds.minimumBackups && status == .ok { status = .warning }
        checks.append(CheckResult("backups.newest", status, "\(count) complete backups, the newest \(newest) started \(describeDuration(age)) ago",
                                  hints: ["Is walferry-backup's cron job running? Its mail says why it failed."],
                                  figures: [CheckFigure("backups_complete", Double(count), .count),
                                            CheckFigure("backup_newest_age", age, .seconds, warning: threshold.warning, critical: threshold.critical)],
                                  labels: labels))
    } else {
        checks.append(CheckResult("backups.newest", .critical, "no complete backup in \"\(request.path)\"",
                                  hints: ["Run walferry-backup -o \(request.path); is its cron job there?"],
                                  figures: [CheckFigure("backups_complete", 0, .count)], labels: labels))
    }

    // Every backup whole: its manifest, its tarballs.
    var broken: [String] = facts.incomplete.map { "\($0) has no backup_manifest" }
    for name in facts.complete {
        let directory = FilePath(request.path).appending(name)
        for tarball in expectedTarballs(backupDirectory: directory) {
            if (try? entryStatus(directory.appending(tarball)))?.kind != .regular { broken.append("\(name) has no \(tarball)") }
        }
    }
    if broken.isEmpty {
        checks.append(CheckResult("backups.complete", count == 0 ? .skipped : .ok,
                                  count == 0 ? "no complete backup" : "\(count) backups, each with its backup_manifest and tarballs", labels: labels))
    } else {
        checks.append(CheckResult("backups.complete", .critical, "\(broken.count) damaged: \(nameList(broken))",
                                  hints: ["A backup without its manifest or a tarball cannot be restored; take a new one and remove it."],
                                  figures: [CheckFigure("backups_damaged", Double(broken.count), .count, critical: 0)], labels: labels))
    }

    // The WAL each backup needs, from its start to its stop, in the archive.
    if let listing = request.archiveListing, let size = request.segmentSize {
        let segments = listing.segments(segmentSize: size)
        var missing: [String] = []
        var unreadable: [String] = []
        for name in facts.complete {
            guard let range = manifestWALRange(backupDirectory: FilePath(request.path).appending(name)), let end = range.end,
                  let needed = walSegmentsNeeded(timeline: range.timeline, startLSN: range.start, stopLSN: end, segmentSize: UInt64(size.bytes)) else {
                unreadable.append(name)
                continue
            }
            for segment in needed {
                guard let parsed = WALFileName(segment), let number = parsed.segmentNumber(segmentSize: size) else { continue }
                if segments[parsed.timeline]?[number] == nil { missing.append("\(name) needs \(segment)") }
            }
        }
        let figures = [CheckFigure("backups_missing_wal", Double(missing.count), .count, critical: 0)]
        if !unreadable.isEmpty {
            checks.append(CheckResult("backups.wal", .critical, "no WAL range in the backup_manifest of \(nameList(unreadable))",
                                      hints: ["walferry-backup writes it; was the manifest edited or truncated?"], figures: figures, labels: labels))
        } else if !missing.isEmpty {
            checks.append(CheckResult("backups.wal", .critical, "\(missing.count) segments missing from the archive: \(nameList(missing))",
                                      hints: ["Without them the backup cannot be made consistent; take a new backup now."],
                                      figures: figures, labels: labels))
        } else {
            checks.append(CheckResult("backups.wal", count == 0 ? .skipped : .ok,
                                      count == 0 ? "no complete backup" : "the WAL of all \(count) backups is in the archive", figures: figures, labels: labels))
        }
    } else {
        checks.append(CheckResult("backups.wal", .skipped, request.archive == nil ? "needs the archive (-A)" : "the archive could not be read", labels: labels))
    }

    checks.append(CheckResult("backups.deep", .skipped,
                              request.deep ? "not yet implemented: --deep backup verification against the manifest's checksums" : "needs --deep",
                              labels: labels))
    return checks
}

/// The tarballs a backup must hold: base.tar.bz2, and <oid>.tar.bz2 for each tablespace its manifest
/// lists files under (pg_tblspc/<oid>/...).
func expectedTarballs(backupDirectory: FilePath) -> [String] {
    var tarballs = ["base.tar.bz2"]
    guard let manifest = try? readWholeFile(backupDirectory.appending("backup_manifest")) else { return tarballs }
    var oids: Set<String> = []
    let marker = Array("\"Path\": \"pg_tblspc/".utf8)
    for line in manifest.split(separator: UInt8(ascii: "\n")) {
        guard let start = line.firstRange(of: marker)?.upperBound else { continue }
        let oid = line[start...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        if !oid.isEmpty { oids.insert(String(decoding: oid, as: UTF8.self)) }
    }
    tarballs += oids.sorted().map { "\($0).tar.bz2" }
    return tarballs
}

// MARK: - --switch's wait, and the textfile

/// Waits until `segment` is in the archive (either form) and passes walferry-restore's checks, or
/// `timeout` seconds after `since` (monotonic) have passed.
public func waitForArchivedSegment(_ segment: String, archive path: String, systemIdentifier: UInt64?, since: Double, timeout: Double) -> CheckResult {
    let name = "primary.switch"
    guard let wanted = WALFileName(segment) else {
        return CheckResult(name, .critical, "the server switched to an unexpected name \"\(segment)\"")
    }
    while true {
        if let archive = try? ArchiveDirectory(path: path) {
            let owner: ArchiveOwner = (try? archive.readIdentity()).map { .identity($0) } ?? .systemIdentifier(systemIdentifier)
            for fileName in ArchiveDirectory.candidates(for: segment, compressedFirst: false) {
                guard (try? archive.handle.status(of: fileName)) != nil else { continue }
                let elapsed = monotonicSeconds() - since
                if let problem = checkArchivedFile(wanted, fileName, in: archive, owner: owner) {
                    return CheckResult(name, .critical, "the switched segment was archived, but is not sound: \(problem.message)",
                                       hints: ["walferry-restore would refuse it; see archive.deep."],
                                       figures: [CheckFigure("switch_archive_delay", elapsed, .seconds)])
                }
                return CheckResult(name, .ok, "switched to a new segment; \(fileName) archived and verified after \(describeDuration(elapsed))",
                                   figures: [CheckFigure("switch_archive_delay", elapsed, .seconds)])
            }
        }
        let elapsed = monotonicSeconds() - since
        if elapsed >= timeout {
            return CheckResult(name, .critical, "\(segment) was not archived within \(describeDuration(timeout)) of the WAL switch",
                               hints: ["Is archiving failing? See primary.archiver, and the server log for archive_command's error."],
                               figures: [CheckFigure("switch_archive_delay", elapsed, .seconds)])
        }
        usleep(50_000)
    }
}

/// Writes `text` to `path` atomically for node_exporter's textfile collector: a temporary file in the
/// same directory (ReplacingFile.swift), renamed over `path`. Returns the error message, or nil.
public func writeTextfile(_ text: String, to path: String) -> String? {
    let file = FilePath(path)
    let name = String(decoding: file.lastComponent, as: UTF8.self)
    guard !name.isEmpty else { return "could not write file \"\(path)\": no file name" }
    do {
        let directory = try DirectoryHandle(path: file.parent)
        let temporary: ReplacingFile
        do {
            temporary = try ReplacingFile(in: directory, temporaryFor: name, mode: 0o644)
        } catch {
            return "could not create a temporary file for \"\(path)\": \(error)"
        }
        let bytes = Array(text.utf8)
        let written: Errno? = bytes.withUnsafeBytes { buffer in
            do throws(Errno) {
                try temporary.write(buffer)
                return nil
            } catch {
                return error
            }
        }
        if let written { return "could not write file \"\(path)\": \(written)" }
        do {
            try temporary.replace(name, durable: false)
        } catch {
            return "could not rename the temporary file to \"\(path)\": \(error)"
        }
        return nil
    } catch {
        return "could not open directory \"\(file.parent)\": \(error)"
    }
}
