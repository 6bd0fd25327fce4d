// walferry-check's judgments of the primary and the standbys, from facts read over libpq
// (WalferryPostgres/PostgresCheckSession.swift): pure functions, so that every rule is tested without
// a server.
//
// Like check_postgres.pl's `archive_ready` and `hot_standby_delay`, and Barman's `check` rule for a
// failing archiver (pg_stat_archiver: the last failure is newer than the last success), except that
// the age of the last archived file alone never alerts: an idle server switches no segment, and that
// rule gives peers' users false alarms. The server's views are documented in PostgreSQL's
// "Monitoring Database Activity" (pg_stat_archiver, pg_stat_wal_receiver) and "System
// Administration Functions" (pg_ls_archive_statusdir, pg_logical_emit_message, pg_switch_wal).

/// What pg_stat_archiver says, times in seconds since the epoch.
public struct ArchiverStatistics: Sendable, Equatable {
    public var archivedCount: Int64
    public var lastArchivedWAL: String?
    public var lastArchivedTime: Double?
    public var failedCount: Int64
    public var lastFailedWAL: String?
    public var lastFailedTime: Double?

    public init(archivedCount: Int64, lastArchivedWAL: String?, lastArchivedTime: Double?, failedCount: Int64,
                lastFailedWAL: String?, lastFailedTime: Double?) {
        self.archivedCount = archivedCount
        self.lastArchivedWAL = lastArchivedWAL
        self.lastArchivedTime = lastArchivedTime
        self.failedCount = failedCount
        self.lastFailedWAL = lastFailedWAL
        self.lastFailedTime = lastFailedTime
    }

    /// Barman's rule: archiving is failing when the last failure is later than the last success;
    /// except for a timeline history file of a timeline older than the last archived segment's, which
    /// the server does not retry once it archives on a newer timeline.
    public var isFailing: Bool {
        guard let failed = lastFailedTime else { return false }
        if let archived = lastArchivedTime, archived >= failed { return false }
        if let failedName = lastFailedWAL.flatMap({ WALFileName($0) }), failedName.kind == .timelineHistory,
           let archivedName = lastArchivedWAL.flatMap({ WALFileName($0) }), archivedName.kind != .timelineHistory,
           failedName.timeline < archivedName.timeline {
            return false
        }
        return true
    }
}

/// The primary's archiving settings.
public struct ArchiveSettings: Sendable, Equatable {
    public var archiveMode: String
    /// Nil when the role may not read it.
    public var archiveCommand: String?
    /// archive_library (PostgreSQL 15+), empty when unset.
    public var archiveLibrary: String

    public init(archiveMode: String, archiveCommand: String?, archiveLibrary: String) {
        self.archiveMode = archiveMode
        self.archiveCommand = archiveCommand
        self.archiveLibrary = archiveLibrary
    }
}

/// The .ready files in the primary's pg_wal/archive_status.
public struct ReadyFiles: Sendable, Equatable {
    /// The names, without `.ready`.
    public var names: [String]
    /// The age of the oldest, in seconds.
    public var oldestAge: Double?

    public init(names: [String], oldestAge: Double?) {
        self.names = names
        self.oldestAge = oldestAge
    }
}

/// walferry-check's thresholds, each with its documented default.
public struct CheckThresholds: Sendable, Equatable {
    /// The age of the oldest .ready file: 10 minutes, 1 hour. An idle server has none.
    public var readyAge = Threshold(warning: 600, critical: 3600)
    /// A standby's replay lag in bytes: 64 MiB, 1 GiB. An idle primary's archive-only standby lags by
    /// less than one segment.
    public var lagBytes = Threshold(warning: 64 * 1024 * 1024, critical: 1024 * 1024 * 1024)
    /// A standby's replay lag in seconds: off (an idle primary's standby replays nothing for hours).
    public var lagSeconds = Threshold(warning: nil, critical: nil)
    /// The newest complete backup's age: 26 hours, 50 hours (nightly backups, with slack).
    public var backupAge = Threshold(warning: 26 * 3600, critical: 50 * 3600)
    /// The fewest complete backups: warning below 1 (critical when there is none at all).
    public var minimumBackups = 1

    public init() {}
}

// MARK: - Primary

public func primaryArchiveSettingsCheck(_ settings: ArchiveSettings, archive: String?) -> CheckResult {
    let name = "primary.archive_settings"
    guard settings.archiveMode == "on" || settings.archiveMode == "always" else {
        return CheckResult(name, .critical, "archive_mode is \(settings.archiveMode)",
                           hints: ["Set archive_mode = on in postgresql.conf and restart the server."])
    }
    if !settings.archiveLibrary.isEmpty {
        return CheckResult(name, .critical, "archive_library is \"\(settings.archiveLibrary)\": archive_command is not used",
                           hints: ["Reset archive_library and set archive_command to walferry-archive."])
    }
    guard let command = settings.archiveCommand else {
        return CheckResult(name, .unknown, "archive_mode is \(settings.archiveMode); archive_command cannot be read by this role",
                           hints: ["Connect as a superuser or a member of pg_read_all_settings."])
    }
    guard command.contains("walferry-archive") else {
        return CheckResult(name, .critical, "archive_command does not run walferry-archive: \"\(command)\"",
                           hints: ["archive_command = 'walferry-archive %p /mnt/archive/%f'"])
    }
    if let archive {
        let trimmed = archive.hasSuffix("/") && archive.count > 1 ? String(archive.dropLast()) : archive
        guard command.contains(trimmed + "/") else {
            return CheckResult(name, .critical, "archive_command does not name the archive \"\(archive)\": \"\(command)\"",
                               hints: ["Is -A the directory archive_command writes to?"])
        }
    }
    return CheckResult(name, .ok, "archive_mode = \(settings.archiveMode), archive_command = '\(command)'")
}

public func primaryArchiverCheck(_ stats: ArchiverStatistics, now: Double) -> CheckResult {
    let name = "primary.archiver"
    var figures = [CheckFigure("archiver_archived", Double(stats.archivedCount), .count),
                   CheckFigure("archiver_failed", Double(stats.failedCount), .count)]
    if let archived = stats.lastArchivedTime {
        figures.append(CheckFigure("archiver_last_archived_age", max(0, now - archived), .seconds))
    }
    if stats.isFailing {
        let age = stats.lastFailedTime.map { " \(describeDuration(max(0, now - $0))) ago" } ?? ""
        return CheckResult(name, .critical,
                           "archiving is failing: last failure on \(stats.lastFailedWAL ?? "?")\(age), \(stats.failedCount) failures; last success \(stats.lastArchivedWAL ?? "never")",
                           hints: ["The server log holds archive_command's error; segments pile up in pg_wal until it succeeds."],
                           figures: figures)
    }
    let last = stats.lastArchivedWAL.map { name in
        "last \(name)" + (stats.lastArchivedTime.map { " \(describeDuration(max(0, now - $0))) ago" } ?? "")
    } ?? "nothing archived since the statistics were reset"
    return CheckResult(name, .ok, "\(stats.archivedCount) archived, \(last)", figures: figures)
}

public func primaryReadyCheck(_ ready: ReadyFiles?, threshold: Threshold, unreadable: String? = nil) -> CheckResult {
    let name = "primary.ready"
    guard let ready else {
        return CheckResult(name, .skipped, "pg_wal/archive_status cannot be read: \(unreadable ?? "unknown reason")",
                           hints: ["pg_ls_archive_statusdir() needs a superuser or a member of pg_monitor."])
    }
    let age = ready.oldestAge ?? 0
    let status = ready.names.isEmpty ? .ok : threshold.judge(age)
    let figures = [CheckFigure("ready_files", Double(ready.names.count), .count),
                   CheckFigure("ready_oldest_age", age, .seconds, warning: threshold.warning, critical: threshold.critical)]
    if ready.names.isEmpty { return CheckResult(name, .ok, "no file waiting to be archived", figures: figures) }
    return CheckResult(name, status, "\(ready.names.count) files waiting to be archived, the oldest for \(describeDuration(age)): \(nameList(ready.names.sorted()))",
                       hints: ["The archiver is behind or failing; see primary.archiver."], figures: figures)
}

// MARK: - Standbys

/// What a standby says about itself.
public struct StandbyFacts: Sendable, Equatable {
    public var inRecovery: Bool
    /// pg_stat_wal_receiver's status, nil when no WAL receiver runs.
    public var receiverStatus: String?
    /// The receiver's sender host, for the message.
    public var senderHost: String?
    /// Whether primary_conninfo is set; nil when the role cannot read it.
    public var hasPrimaryConninfo: Bool?
    public var replayLSN: UInt64?
    /// The age of the last replayed transaction, in seconds.
    public var lastReplayAge: Double?
    public var replayPaused: Bool

    public init(inRecovery: Bool, receiverStatus: String?, senderHost: String?, hasPrimaryConninfo: Bool?, replayLSN: UInt64?,
                lastReplayAge: Double?, replayPaused: Bool) {
        self.inRecovery = inRecovery
        self.receiverStatus = receiverStatus
        self.senderHost = senderHost
        self.hasPrimaryConninfo = hasPrimaryConninfo
        self.replayLSN = replayLSN
        self.lastReplayAge = lastReplayAge
        self.replayPaused = replayPaused
    }

    /// No WAL receiver and no primary_conninfo: it replays from the archive only.
    public var isArchiveOnly: Bool { receiverStatus == nil && hasPrimaryConninfo != true }
}

public func standbyRecoveryCheck(_ facts: StandbyFacts, labels: [(String, String)]) -> CheckResult {
    guard facts.inRecovery else {
        return CheckResult("standby.recovery", .critical, "the server is not in recovery: it was promoted, or is not a standby",
                           hints: ["A promoted standby writes its own timeline; repoint or rebuild it."], labels: labels)
    }
    if facts.replayPaused {
        return CheckResult("standby.recovery", .warning, "in recovery, replay paused",
                           hints: ["SELECT pg_wal_replay_resume() on the standby resumes it."], labels: labels)
    }
    return CheckResult("standby.recovery", .ok, "in recovery", labels: labels)
}

public func standbyReceiverCheck(_ facts: StandbyFacts, labels: [(String, String)]) -> CheckResult {
    let name = "standby.receiver"
    if facts.receiverStatus == "streaming" {
        return CheckResult(name, .ok, "streaming" + (facts.senderHost.map { " from \($0)" } ?? ""), labels: labels)
    }
    if facts.isArchiveOnly {
        return CheckResult(name, .ok, "archive-only (no primary_conninfo)", labels: labels)
    }
    let state = facts.receiverStatus.map { "WAL receiver is \($0)" } ?? "no WAL receiver runs"
    return CheckResult(name, .critical, "not streaming: \(state)",
                       hints: ["The standby's server log says why the connection to the primary fails; it falls back to the archive meanwhile."],
                       labels: labels)
}

/// The replay lag: bytes behind the primary's current position, and the age of the last replayed
/// transaction while the standby is behind.
public func standbyLagCheck(_ facts: StandbyFacts, primaryLSN: UInt64?, thresholds: CheckThresholds, labels: [(String, String)]) -> CheckResult {
    let name = "standby.lag"
    guard let primaryLSN, let replay = facts.replayLSN else {
        return CheckResult(name, .skipped, primaryLSN == nil ? "needs the primary (-d)" : "the standby reports no replay position", labels: labels)
    }
    let bytes = primaryLSN > replay ? Double(primaryLSN - replay) : 0
    let seconds = bytes > 0 ? (facts.lastReplayAge ?? 0) : 0
    let figures = [CheckFigure("standby_replay_lag", bytes, .bytes, warning: thresholds.lagBytes.warning, critical: thresholds.lagBytes.critical),
                   CheckFigure("standby_replay_lag", seconds, .seconds, warning: thresholds.lagSeconds.warning, critical: thresholds.lagSeconds.critical)]
    let byBytes = thresholds.lagBytes.judge(bytes), bySeconds = thresholds.lagSeconds.judge(seconds)
    let status = byBytes.severity >= bySeconds.severity ? byBytes : bySeconds
    let message = "replayed to \(formatLSN(replay)), \(describeBytes(bytes)) behind the primary" + (seconds > 0 ? ", last transaction replayed \(describeDuration(seconds)) ago" : "")
    return CheckResult(name, status, message,
                       hints: facts.replayPaused ? ["Replay is paused: SELECT pg_wal_replay_resume() on the standby."] : ["Is the standby's disk or CPU saturated, or a long query holding replay back?"],
                       figures: figures, labels: labels)
}

/// The smoke test's outcome on one standby.
public enum SmokeOutcome: Sendable, Equatable {
    /// Replayed past the message's LSN after `seconds`.
    case replayed(seconds: Double)
    /// Not replayed within the deadline.
    case timedOut(deadline: Double, replayLSN: UInt64?)
    /// An archive-only standby, not waited for (no --switch).
    case notWaited(replayLSN: UInt64?, lastReplayAge: Double?)
}

public func standbySmokeCheck(_ outcome: SmokeOutcome, messageLSN: UInt64, labels: [(String, String)]) -> CheckResult {
    let name = "standby.smoke"
    switch outcome {
    case .replayed(let seconds):
        return CheckResult(name, .ok, "replayed the primary's message at \(formatLSN(messageLSN)) after \(describeDuration(seconds))",
                           figures: [CheckFigure("standby_smoke_delay", seconds, .seconds)], labels: labels)
    case .timedOut(let deadline, let replay):
        return CheckResult(name, .critical,
                           "did not replay the primary's message at \(formatLSN(messageLSN)) within \(describeDuration(deadline)) (replayed to \(replay.map(formatLSN) ?? "unknown"))",
                           hints: ["Replay is stopped, paused or far behind; see standby.lag and the standby's server log."],
                           figures: [CheckFigure("standby_smoke_delay", deadline, .seconds)], labels: labels)
    case .notWaited(let replay, let age):
        let ageText = age.map { ", last transaction replayed \(describeDuration($0)) ago" } ?? ""
        return CheckResult(name, .ok,
                           "archive-only: not waited for without --switch; replayed to \(replay.map(formatLSN) ?? "unknown")\(ageText)",
                           labels: labels)
    }
}

// MARK: - Formatting figures in messages

/// "57 ms", "3 s", "1.5 s", "4 min 2 s", "3 h 20 min", "2 d 4 h".
public func describeDuration(_ seconds: Double) -> String {
    if seconds < 1 { return "\(Int((seconds * 1000).rounded())) ms" }
    if seconds < 60 { return formatNumber((seconds * 10).rounded() / 10) + " s" }
    let whole = Int64(seconds.rounded())
    if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
    if whole < 86400 { return "\(whole / 3600) h \(whole % 3600 / 60) min" }
    return "\(whole / 86400) d \(whole % 86400 / 3600) h"
}

/// "0 bytes", "512 kB", "16 MB", "1.5 GB": 1024-based, as PostgreSQL's pg_size_pretty.
public func describeBytes(_ bytes: Double) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB"]
    var value = bytes, index = 0
    while value >= 1024 && index < units.count - 1 {
        value /= 1024
        index += 1
    }
    return formatNumber(index == 0 ? value : (value * 10).rounded() / 10) + " " + units[index]
}

/// Parses a duration option: a number of seconds, or with a unit `s`, `min` (or `m`), `h`, `d`.
public func parseDuration(_ text: String) -> Double? {
    let units: [(String, Double)] = [("min", 60), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value >= 0, value.isFinite else { return nil }
        return value * factor
    }
    guard let value = Double(text), value >= 0, value.isFinite else { return nil }
    return value
}

/// Parses a size option: a number of bytes, or with a unit `kB`, `MB`, `GB`, `TB` (1024-based, as
/// postgresql.conf).
public func parseSize(_ text: String) -> Double? {
    let units: [(String, Double)] = [("kB", 1024), ("MB", 1024 * 1024), ("GB", 1024 * 1024 * 1024), ("TB", 1024 * 1024 * 1024 * 1024)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value >= 0, value.isFinite else { return nil }
        return value * factor
    }
    guard let value = Double(text), value >= 0, value.isFinite else { return nil }
    return value
}
