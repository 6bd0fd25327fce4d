// walferry-check's SQL: what it reads from the primary and the standbys, and the only things it writes
// (WAL, never a table): the smoke test's non-transactional logical message, and --switch's restore
// point and WAL switch.
//
// Like check_postgres.pl's queries and Barman's PostgreSQLConnection (server facts, pg_stat_archiver,
// pg_stat_wal_receiver), on one PostgresConnection per server. Every query is read-only except the
// three named above. The views and functions are those of PostgreSQL 12 and later
// (pg_ls_archive_statusdir is 12+, pg_get_wal_replay_pause_state 14+; older servers fall back).

import WalferryCore

/// walferry-check's connection defaults, overridden by anything in -d or -s: a bounded connect time
/// for cron and Nagios, and the application name shown in pg_stat_activity.
public func checkConnectionDefaults(connectTimeout: Int) -> [(String, String)] {
    [("fallback_application_name", "walferry-check"), ("connect_timeout", String(max(1, connectTimeout)))]
}

/// One server walferry-check talks to.
public final class PostgresCheckSession {
    private let connection: PostgresConnection

    /// host=… port=… as libpq resolved them.
    public var description: String { connection.description }
    public var serverVersion: Int { connection.serverVersion }

    public init(conninfo: String?, connectTimeout: Int) throws(PostgresError) {
        connection = try PostgresConnection(conninfo: conninfo, defaults: checkConnectionDefaults(connectTimeout: connectTimeout),
                                            onNotice: { _ in })
        // A check that waits has its own deadline; no query may hang past it.
        _ = try connection.execute("SET statement_timeout = '60s'")
    }

    private func row(_ sql: String, _ parameters: [String] = []) throws(PostgresError) -> [String?] {
        let result = try connection.execute(sql, parameters)
        guard result.rowCount == 1 else {
            throw PostgresError(message: "unexpected result: expected one row, got \(result.rowCount)", details: [], sqlState: nil)
        }
        return (0..<result.columnCount).map { result.text(row: 0, column: $0) }
    }

    // MARK: - Facts

    public func isInRecovery() throws(PostgresError) -> Bool {
        try row("SELECT pg_catalog.pg_is_in_recovery()")[0] == "t"
    }

    /// The system identifier and segment size (pg_control_system, pg_control_init).
    public func controlData() throws(PostgresError) -> (systemIdentifier: UInt64, segmentSize: WALSegmentSize) {
        let values = try row("SELECT system_identifier::text, (SELECT bytes_per_wal_segment::text FROM pg_catalog.pg_control_init()) FROM pg_catalog.pg_control_system()")
        guard let identifier = values[0].flatMap({ UInt64($0) }),
              let size = values[1].flatMap({ UInt64($0) }).flatMap({ WALSegmentSize(bytes: $0) }) else {
            throw PostgresError(message: "unexpected result from pg_control_system()", details: [], sqlState: nil)
        }
        return (identifier, size)
    }

    /// The primary's current WAL position and the timeline it writes.
    public func currentPosition() throws(PostgresError) -> (lsn: UInt64, timeline: UInt32) {
        let values = try row("SELECT pg_catalog.pg_current_wal_lsn()::text, pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())")
        guard let lsn = values[0].flatMap({ parseLSN($0) }), let name = values[1].flatMap({ WALFileName($0) }) else {
            throw PostgresError(message: "unexpected result from pg_current_wal_lsn()", details: [], sqlState: nil)
        }
        return (lsn, name.timeline)
    }

    /// archive_mode, archive_command (nil when hidden from this role) and archive_library.
    public func archiveSettings() throws(PostgresError) -> ArchiveSettings {
        let result = try connection.execute("SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN ('archive_mode', 'archive_command', 'archive_library')")
        var settings: [String: String] = [:]
        for index in 0..<result.rowCount {
            if let name = result.text(row: index, column: 0) { settings[name] = result.text(row: index, column: 1) ?? "" }
        }
        return ArchiveSettings(archiveMode: settings["archive_mode"] ?? "unknown", archiveCommand: settings["archive_command"],
                               archiveLibrary: settings["archive_library"] ?? "")
    }

    /// pg_stat_archiver, and the server's clock.
    public func archiverStatistics() throws(PostgresError) -> (ArchiverStatistics, now: Double) {
        let values = try row("""
            SELECT archived_count::text, last_archived_wal, extract(epoch FROM last_archived_time)::text,
                   failed_count::text, last_failed_wal, extract(epoch FROM last_failed_time)::text,
                   extract(epoch FROM now())::text
            FROM pg_catalog.pg_stat_archiver
            """)
        let stats = ArchiverStatistics(archivedCount: values[0].flatMap { Int64($0) } ?? 0, lastArchivedWAL: values[1],
                                       lastArchivedTime: values[2].flatMap { Double($0) },
                                       failedCount: values[3].flatMap { Int64($0) } ?? 0, lastFailedWAL: values[4],
                                       lastFailedTime: values[5].flatMap { Double($0) })
        return (stats, values[6].flatMap { Double($0) } ?? 0)
    }

    /// The .ready files of pg_wal/archive_status (pg_ls_archive_statusdir: superuser or pg_monitor).
    public func readyFiles() throws(PostgresError) -> ReadyFiles {
        let result = try connection.execute("""
            SELECT substring(name FOR length(name) - 6), extract(epoch FROM now() - modification)::text
            FROM pg_catalog.pg_ls_archive_statusdir() WHERE name LIKE '%.ready'
            """)
        var names: [String] = []
        var oldest: Double?
        for index in 0..<result.rowCount {
            if let name = result.text(row: index, column: 0) { names.append(name) }
            if let age = result.text(row: index, column: 1).flatMap({ Double($0) }) { oldest = max(oldest ?? 0, age) }
        }
        return ReadyFiles(names: names, oldestAge: oldest)
    }

    /// What a standby says about itself.
    public func standbyFacts() throws(PostgresError) -> StandbyFacts {
        let inRecovery = try isInRecovery()
        let receiver = try connection.execute("SELECT status, sender_host FROM pg_catalog.pg_stat_wal_receiver")
        let status = receiver.rowCount > 0 ? receiver.text(row: 0, column: 0) : nil
        let sender = receiver.rowCount > 0 ? receiver.text(row: 0, column: 1) : nil
        // primary_conninfo is readable by superusers and pg_read_all_settings only.
        let conninfo = try? row("SELECT setting FROM pg_catalog.pg_settings WHERE name = 'primary_conninfo'")
        let hasConninfo = conninfo.map { !($0[0] ?? "").isEmpty }
        let replay = try row("""
            SELECT pg_catalog.pg_last_wal_replay_lsn()::text,
                   extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::text
            """)
        var paused = false
        if inRecovery {
            let sql = connection.serverVersion >= 140000
                ? "SELECT pg_catalog.pg_get_wal_replay_pause_state() <> 'not paused'"
                : "SELECT pg_catalog.pg_is_wal_replay_paused()"
            paused = (try? row(sql))?[0] == "t"
        }
        return StandbyFacts(inRecovery: inRecovery, receiverStatus: status, senderHost: sender, hasPrimaryConninfo: hasConninfo,
                            replayLSN: replay[0].flatMap { parseLSN($0) }, lastReplayAge: replay[1].flatMap { Double($0) },
                            replayPaused: paused)
    }

    /// The position a standby has replayed to.
    public func replayPosition() throws(PostgresError) -> UInt64? {
        try row("SELECT pg_catalog.pg_last_wal_replay_lsn()::text")[0].flatMap { parseLSN($0) }
    }

    // MARK: - The writes: WAL only

    /// The smoke test's record: a non-transactional logical message, which touches no table; returns
    /// the LSN the server reports for it.
    public func emitSmokeMessage(_ text: String) throws(PostgresError) -> UInt64 {
        let values = try row("SELECT pg_catalog.pg_logical_emit_message(false, 'walferry-check', $1)::text", [text])
        guard let lsn = values[0].flatMap({ parseLSN($0) }) else {
            throw PostgresError(message: "unexpected result from pg_logical_emit_message()", details: [], sqlState: nil)
        }
        return lsn
    }

    /// --switch: a restore point named `label`, then a WAL switch; returns the name of the segment the
    /// switch completed (pg_walfile_name of the switch's LSN, as the documentation advises).
    public func switchWAL(restorePoint label: String) throws(PostgresError) -> String {
        _ = try row("SELECT pg_catalog.pg_create_restore_point($1)::text", [label])
        let values = try row("SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())")
        guard let name = values[0] else {
            throw PostgresError(message: "unexpected result from pg_switch_wal()", details: [], sqlState: nil)
        }
        return name
    }
}
