// walferry-backup's exit statuses (its steps throw ToolFailure<BackupExitStatus>, BackupFailure).
//
// Like pgBackRest's numbered error types (the process exits with the error's number), but with a
// handful of small statuses that a cron wrapper can act on, instead of one per error: what to do next
// differs between "the server refused", "the session died mid-backup", "another run holds the lock"
// and "the backup is done but the old ones could not be removed". Every status is below 126, so a
// shell never mistakes one for "command not found" or a signal.

/// The exit statuses of walferry-backup. The man page's EXIT STATUS section lists the same.
public enum BackupExitStatus: Int32, ToolExitStatus, CaseIterable {
    /// The backup is complete and durable (and retention, when asked for, succeeded).
    case success = 0
    /// The backup failed: a file could not be read or written, WAL was missing from the archive, the
    /// compressor failed. Partial output was removed.
    case failure = 1
    /// Usage error: bad options, or options that do not fit this cluster (a single tarball asked for a
    /// cluster with tablespaces).
    case usage = 2
    /// The server could not be reached, or refused a step (authentication, privileges, version).
    case server = 3
    /// -D is not the data directory of the server connected to.
    case wrongDataDirectory = 4
    /// The session that started the backup ended before pg_backup_stop: the backup is void.
    case sessionLost = 5
    /// Another walferry-backup holds the lock on the same output.
    case locked = 6
    /// The backup is complete and durable, but --keep could not remove an old backup or old WAL.
    case retention = 7
    /// Interrupted by SIGINT, SIGTERM or SIGHUP; partial output was removed.
    case interrupted = 8
}
