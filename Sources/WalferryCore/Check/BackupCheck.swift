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

/// A backup directory, read once through the backup catalogue (Backup/BackupCatalog.swift).
public struct BackupDirectoryFacts: Sendable {
    public var path: String
    /// Why the directory could not be read, when it could not.
    public var problem: String?
    /// The complete backups whose manifest was read and verified, oldest first.
    public var complete: [CatalogedBackup] = []
    /// Complete backups whose manifest could not be read or is damaged: the catalogue's message.
    public var damaged: [String] = []
    /// Backup-named directories without a backup_manifest.
    public var incomplete: [String] = []
    /// The first segment the oldest complete backup needs, when the segment size is known.
    public var oldestStart: WALFileName?

    public var count: Int { complete.count + damaged.count }
}

/// Reads the backup directory: its complete backups (each manifest read and verified), the damaged
/// and incomplete ones, and the oldest one's start.
public func readBackupDirectory(_ path: String, segmentSize: WALSegmentSize?) -> BackupDirectoryFacts {
    var facts = BackupDirectoryFacts(path: path)
    let names: [[UInt8]]
    let complete: [String]
    do {
        names = try directoryNames(FilePath(path))
        complete = try completeBackups(in: path)
    } catch {
        facts.problem = "could not read backup directory \"\(path)\": \(error)"
        return facts
    }
    facts.incomplete = names.filter(isBackupDirectoryName).map { String(decoding: $0, as: UTF8.self) }
        .filter { !complete.contains($0) }.sorted()
    for name in complete {
        do {
            facts.complete.append(try CatalogedBackup(at: FilePath(path).appending(name)))
        } catch {
            facts.damaged.append(error.message)
        }
    }
    let size = segmentSize ?? .default
    if let oldest = facts.complete.first, let start = oldest.startSegment(segmentSize: UInt64(size.bytes)) {
        facts.oldestStart = WALFileName(start)
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
    public var jobs = onlineCPUCount
    /// The time to measure ages against, in seconds since the epoch.
    public var now: Double = 0

    public init(path: String, facts: BackupDirectoryFacts) {
        self.path = path
        self.facts = facts
    }
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

    // The newest complete backup (by the start time its name records), and the count.
    let count = facts.complete.count
    if let newest = facts.complete.last, let started = newest.nameTime {
        let age = max(0, request.now - Double(started))
        let threshold = request.thresholds.backupAge
        var status = threshold.judge(age)
        if count < request.thresholds.minimumBackups && status == .ok { status = .warning }
        checks.append(CheckResult("backups.newest", status, "\(plural(count, "complete backup")), the newest \(newest.id) started \(describeDuration(age)) ago",
                                  hints: ["Is walferry-backup's cron job running? Its mail says why it failed."],
                                  figures: [CheckFigure("backups_complete", Double(count), .count),
                                            CheckFigure("backup_newest_age", age, .seconds, warning: threshold.warning, critical: threshold.critical)],
                                  labels: labels))
    } else {
        checks.append(CheckResult("backups.newest", .critical, "no complete backup in \"\(request.path)\"",
                                  hints: ["Run walferry-backup -o \(request.path); is its cron job there?"],
                                  figures: [CheckFigure("backups_complete", 0, .count)], labels: labels))
    }

    // Every backup whole: its manifest (read and verified by the catalogue), its tarballs.
    var broken = facts.incomplete.map { "\($0) has no backup_manifest" } + facts.damaged
    for backup in facts.complete {
        var tarballs = backup.tarballs.map(\.path)
        // A tablespace the manifest lists files under must have its tarball.
        var oids: Set<String> = []
        for file in backup.manifest?.files ?? [] where file.path.starts(with: Array("pg_tblspc/".utf8)) {
            let oid = file.path.dropFirst(10).prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            if !oid.isEmpty { oids.insert(String(decoding: oid, as: UTF8.self)) }
        }
        for oid in oids.sorted() where !tarballs.contains(backup.path.appending("\(oid).tar.bz2")) {
            tarballs.append(backup.path.appending("\(oid).tar.bz2"))
        }
        for tarball in tarballs where (try? entryStatus(tarball))?.kind != .regular {
            broken.append("\(backup.id) has no \(String(decoding: tarball.lastComponent, as: UTF8.self))")
        }
    }
    if broken.isEmpty {
        checks.append(CheckResult("backups.complete", count == 0 ? .skipped : .ok,
                                  count == 0 ? "no complete backup" : "\(plural(count, "backup")), each with its verified backup_manifest and its tarballs",
                                  labels: labels))
    } else {
        checks.append(CheckResult("backups.complete", .critical, "\(broken.count) damaged: \(nameList(broken))",
                                  hints: ["A backup without its manifest or a tarball cannot be restored; take a new one and remove it."],
                                  figures: [CheckFigure("backups_damaged", Double(broken.count), .count, critical: 0)], labels: labels))
    }

    // The WAL each backup needs, from its start to its stop: in the archive, or else in its tarball.
    if let listing = request.archiveListing, let size = request.segmentSize {
        let segments = listing.segments(segmentSize: size)
        var missing: [String] = []
        var unreadable: [String] = []
        for backup in facts.complete {
            guard let needed = backup.segmentsNeeded(segmentSize: UInt64(size.bytes)) else {
                unreadable.append(backup.id)
                continue
            }
            let notArchived = needed.filter { segment in
                guard let parsed = WALFileName(segment), let number = parsed.segmentNumber(segmentSize: size) else { return true }
                return segments[parsed.timeline]?[number] == nil
            }
            guard !notArchived.isEmpty else { continue }
            // Not in the archive: walferry-backup --wal-archive copies it into base.tar.bz2's pg_wal.
            let inTarball = walInBaseTarball(backup, jobs: request.jobs)
            missing += notArchived.filter { !inTarball.contains($0) }.map { "\(backup.id) needs \($0)" }
        }
        let figures = [CheckFigure("backups_missing_wal", Double(missing.count), .count, critical: 0)]
        if !unreadable.isEmpty {
            checks.append(CheckResult("backups.wal", .critical, "no WAL range in the backup_manifest of \(nameList(unreadable))",
                                      hints: ["walferry-backup writes it; was the manifest edited or truncated?"], figures: figures, labels: labels))
        } else if !missing.isEmpty {
            checks.append(CheckResult("backups.wal", .critical, "\(missing.count) segments neither in the archive nor in the tarball: \(nameList(missing))",
                                      hints: ["Without them the backup cannot be made consistent; take a new backup now."],
                                      figures: figures, labels: labels))
        } else {
            checks.append(CheckResult("backups.wal", count == 0 ? .skipped : .ok,
                                      count == 0 ? "no complete backup" : "the WAL of \(plural(count, "backup")) is there", figures: figures, labels: labels))
        }
    } else {
        checks.append(CheckResult("backups.wal", .skipped, request.archive == nil ? "needs the archive (-A)" : "the archive could not be read", labels: labels))
    }

    // --deep: the newest backup's tarballs read, every file checked against the manifest.
    if !request.deep {
        checks.append(CheckResult("backups.deep", .skipped, "needs --deep", labels: labels))
    } else if let newest = facts.complete.last {
        let started = monotonicSeconds()
        let verifier = BackupVerifier(manifest: newest.manifest, name: newest.path.description)
        do throws(BackupProblem) {
            for tarball in newest.tarballs {
                try readBackupTarball(tarball, verifier: verifier, sink: DiscardingBackupSink(), jobs: request.jobs)
            }
            try verifier.finish()
            let files = newest.manifest?.files.count ?? 0
            checks.append(CheckResult("backups.deep", .ok,
                                      "\(newest.id): \(plural(files, "file")) of \(plural(newest.tarballs.count, "tarball")) match the manifest (\(describeDuration(monotonicSeconds() - started)))",
                                      figures: [CheckFigure("backup_verified_files", Double(files), .count)], labels: labels))
        } catch {
            checks.append(CheckResult("backups.deep", .critical, "\(newest.id): \(error.message)",
                                      hints: error.hints.isEmpty ? ["The newest backup cannot be restored as it is: take a new backup now."] : error.hints,
                                      labels: labels))
        }
    } else {
        checks.append(CheckResult("backups.deep", .skipped, "no complete backup", labels: labels))
    }
    return checks
}

/// The WAL segment names in a backup's base.tar.bz2 (pg_wal/), read through the shared tarball
/// reader; empty when it cannot be read (the caller then reports the segments as missing).
func walInBaseTarball(_ backup: CatalogedBackup, jobs: Int) -> Set<String> {
    final class Recorder: BackupEntrySink {
        var names: Set<String> = []
        func entryBegins(_ entry: BackupEntry) throws(BackupProblem) {
            let path = entry.manifestPath
            let prefix = Array("pg_wal/".utf8)
            guard path.count == prefix.count + 24, path.starts(with: prefix) else { return }
            names.insert(String(decoding: path.dropFirst(prefix.count), as: UTF8.self))
        }
        func fileData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem) {}
        func fileEnds() throws(BackupProblem) {}
    }
    guard let base = backup.tarballs.first else { return [] }
    let recorder = Recorder()
    try? readBackupTarball(base, verifier: BackupVerifier(manifest: backup.manifest, name: backup.path.description), sink: recorder, jobs: jobs)
    return recorder.names
}

/// "1 backup", "3 backups".
func plural(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

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
