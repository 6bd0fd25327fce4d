// --keep N: remove the complete backups older than the newest N, and (with --wal-archive) the archived
// WAL that none of the kept backups needs.
//
// Like pgBackRest's expire (full-backup retention, then WAL older than the oldest kept backup's start),
// but the WAL is removed by walferry-cleanup's own code (runCleanup, the pg_archivecleanup rules, with
// `-x .bz2` so that plain and compressed files are both examined, and `-b` so that the history files of
// removed backups go too), with the oldest kept backup's start segment as the cut-off. A backup is
// first renamed to a hidden temporary name, so that a removal cut short never leaves a half-deleted
// directory under a name that looks complete. Which backups are complete, and the WAL each needs, come
// from the backup catalogue (BackupCatalog.swift).

/// What retention did, for the verbose output.
public struct RetentionOutcome: Sendable {
    public var removedBackups: [String] = []
    /// The cut-off given to the WAL cleanup, when it ran.
    public var walCutoff: String?
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
        return (outcome, BackupFailure(.retention, error.message))
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
