// --keep N: remove the complete backups older than the newest N, and (with --wal-archive) the archived
// WAL that none of the kept backups needs.
//
// Like pgBackRest's expire (full-backup retention, then WAL older than the oldest kept backup's start),
// but the WAL is removed by walferry-cleanup's own code (runCleanup, the pg_archivecleanup rules, with
// `-x .bz2` so that plain and compressed files are both examined, and `-b` so that the history files of
// removed backups go too), with the oldest kept backup's start segment as the cut-off. A backup is
// first renamed to a hidden temporary name, so that a removal cut short never leaves a half-deleted
// directory under a name that looks complete.

/// What retention did, for the verbose output.
public struct RetentionOutcome: Sendable {
    public var removedBackups: [String] = []
    /// The cut-off given to the WAL cleanup, when it ran.
    public var walCutoff: String?
}

/// The complete backups in `directory`, oldest first: directories named by `backupDirectoryName` that
/// hold a backup_manifest.
public func completeBackups(in directory: String) throws(BackupFailure) -> [String] {
    let root = FilePath(directory)
    let names: [[UInt8]]
    do {
        names = try directoryNames(root)
    } catch {
        throw BackupFailure(.retention, "could not read directory \"\(directory)\": \(error)")
    }
    return names.filter { name in
        guard isBackupDirectoryName(name) else { return false }
        let manifest = root.appending(name).appending("backup_manifest")
        return (try? entryStatus(manifest))?.kind == .regular
    }.map { String(decoding: $0, as: UTF8.self) }.sorted { backupSortKey($0) < backupSortKey($1) }
}

/// Sorts "…Z", "…Z-2", "…Z-10" in the order they were made.
private func backupSortKey(_ name: String) -> (String, Int) {
    let parts = name.split(separator: "-", maxSplits: 1)
    return (String(parts.first ?? ""), parts.count == 2 ? Int(parts[1]) ?? 0 : 1)
}

/// The first WAL segment the backup in `backupDirectory` needs, from its manifest's WAL-Ranges line
/// (Timeline and Start-LSN) and the cluster's segment size.
public func oldestNeededWALFile(backupDirectory: FilePath, segmentSize: UInt64) -> String? {
    guard let range = manifestWALRange(backupDirectory: backupDirectory) else { return nil }
    return walSegmentName(timeline: range.timeline, lsn: range.start, segmentSize: segmentSize)
}

/// The WAL range of the backup in `backupDirectory`, from its manifest's WAL-Ranges line: timeline,
/// Start-LSN and End-LSN (nil for End-LSN when it cannot be read).
public func manifestWALRange(backupDirectory: FilePath) -> (timeline: UInt32, start: UInt64, end: UInt64?)? {
    guard let manifest = try? readWholeFile(backupDirectory.appending("backup_manifest")) else { return nil }
    let text = String(decoding: manifest, as: UTF8.self)
    // { "Timeline": 1, "Start-LSN": "0/9000028", "End-LSN": "0/9000100" }
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("{ \"Timeline\": ") }) else { return nil }
    let fields = line.split(separator: "\"")
    guard let timelineIndex = fields.firstIndex(of: "Timeline"), let startIndex = fields.firstIndex(of: "Start-LSN"),
          timelineIndex + 1 < fields.count, startIndex + 2 < fields.count else { return nil }
    let timelineText = fields[timelineIndex + 1].filter { $0.isNumber }
    guard let timeline = UInt32(timelineText), let start = parseLSN(fields[startIndex + 2]) else { return nil }
    let end = fields.firstIndex(of: "End-LSN").flatMap { $0 + 2 < fields.count ? parseLSN(fields[$0 + 2]) : nil }
    return (timeline, start, end)
}

/// Keeps the newest `keep` complete backups in `directory` and removes the others; then, with a WAL
/// archive, removes the WAL older than the oldest kept backup's start.
public func applyRetention(directory: String, keep: Int, walArchive: String?, segmentSize: UInt64,
                           console: Console) -> (RetentionOutcome, BackupFailure?) {
    var outcome = RetentionOutcome()
    let backups: [String]
    do {
        backups = try completeBackups(in: directory)
    } catch {
        return (outcome, error)
    }
    let root = FilePath(directory)
    var failure: BackupFailure?
    for name in backups.dropLast(keep) {
        let path = root.appending(name)
        let hidden = root.appending((partialPrefix + "expired-" + name))
        do {
            try renameNoReplace(path, hidden)
            try removeTree(hidden)
            outcome.removedBackups.append(name)
        } catch {
            failure = failure ?? BackupFailure(.retention, "could not remove old backup \"\(path)\": \(error)")
        }
    }
    if let failure { return (outcome, failure) }
    do {
        try syncDirectory(root)
    } catch {
        return (outcome, BackupFailure(.retention, "could not fsync directory \"\(directory)\": \(error)"))
    }

    guard let walArchive else { return (outcome, nil) }
    let kept = backups.suffix(keep)
    guard let oldest = kept.first,
          let cutoff = oldestNeededWALFile(backupDirectory: root.appending(oldest), segmentSize: segmentSize) else {
        return (outcome, BackupFailure(.retention, "could not find the start WAL location of the oldest kept backup in \"\(directory)\"; no WAL was removed",
                                       hints: ["Its backup_manifest must hold a WAL-Ranges entry."]))
    }
    outcome.walCutoff = cutoff
    var request = CleanupRequest(archiveLocation: walArchive, oldestKeptWALFile: cutoff)
    request.stripExtension = ".bz2"
    request.cleanBackupHistory = true
    let status = runCleanup(request, console: console, output: StandardOutput())
    if status != .success {
        return (outcome, BackupFailure(.retention, "could not remove the WAL older than \"\(cutoff)\" from \"\(walArchive)\""))
    }
    return (outcome, nil)
}
