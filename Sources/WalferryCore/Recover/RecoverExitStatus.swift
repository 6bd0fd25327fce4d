// walferry-recover's exit statuses (its steps throw ToolFailure<RecoverExitStatus>, RecoverFailure).
//
// Like walferry-backup's (BackupExitStatus.swift): a handful of small statuses a script can act on,
// all below 126. What to do next differs between "the backup is damaged" (take another), "the target
// is in use" (stop the server first), "the backup cannot reach the target" (WAL or timeline) and
// "nothing to choose from".

/// The exit statuses of walferry-recover. The man page's EXIT STATUS section lists the same.
public enum RecoverExitStatus: Int32, ToolExitStatus, CaseIterable {
    /// The data directory is complete, verified, durable and in place.
    case success = 0
    /// A file could not be read or written (a full disk included); nothing was left under the final name.
    case failure = 1
    /// Usage error: bad options, or options that do not fit the backup.
    case usage = 2
    /// The backup failed verification: a missing or damaged tarball, a manifest mismatch.
    case damaged = 3
    /// Refused to do harm: the target is not empty (without --force), a server is running in it, a
    /// tablespace directory is not empty, or the target is on another file system than its parent.
    case refused = 4
    /// No complete backup to recover from: none in the directory, no --backup of that name, or none
    /// that ended before the target.
    case noBackup = 5
    /// The backup cannot reach the target: its timeline is not in the target timeline's history, or
    /// WAL it needs is neither in its tarball nor in --wal-archive.
    case unrecoverable = 6
    /// Interrupted by SIGINT, SIGTERM or SIGHUP; nothing was left under the final name.
    case interrupted = 7
}

public typealias RecoverFailure = ToolFailure<RecoverExitStatus>
