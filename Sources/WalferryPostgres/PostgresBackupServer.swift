// The SQL of a non-exclusive base backup, per server version, on one PostgresConnection.
//
// Like pgBackRest's src/db/db.c (one connection for the whole backup, session settings that keep it
// alive, schema-qualified calls, pg_backup_start on 15+ and pg_start_backup before), for the SQL
// interface of PostgreSQL 9.6 to 17:
//   15+    pg_backup_start(label, fast)            pg_backup_stop(wait_for_archive)
//   10-14  pg_start_backup(label, fast, false)     pg_stop_backup(false, wait_for_archive)
//   9.6    pg_start_backup(label, fast, false)     pg_stop_backup(false)  (always waits)
// labelfile and spcmapfile are fetched in binary format, which for text is the raw bytes (in the
// server encoding, see Connection.swift), so that they reach the tarball exactly as the server made
// them.

import WalferryCore

/// walferry-backup's defaults for the connection, overridden by anything in -d: TCP keepalives so
/// that a dead network path ends the session within about half a minute instead of hours (the backup
/// then fails at once), a bounded connect time for cron, and the application name shown in
/// pg_stat_activity.
public let backupConnectionDefaults: [(String, String)] = [
    ("fallback_application_name", "walferry-backup"),
    ("connect_timeout", "30"),
    ("keepalives", "1"),
    ("keepalives_idle", "10"),
    ("keepalives_interval", "5"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "60000"),
]

/// A BackupServer on libpq.
public final class PostgresBackupServer: BackupServer, @unchecked Sendable {
    // @unchecked: the connection serialises its own use; `connection` itself never changes.
    private let connection: PostgresConnection

    /// Connects (see `backupConnectionDefaults`) and prepares the session: no statement or idle
    /// timeout may end it during a backup that takes hours.
    public init(conninfo: String?, onNotice: @escaping @Sendable (String) -> Void) throws(BackupFailure) {
        do {
            connection = try PostgresConnection(conninfo: conninfo, defaults: backupConnectionDefaults, onNotice: onNotice)
        } catch {
            throw BackupFailure(.server, "could not connect to the server: \(error.message)",
                                hints: PostgresBackupServer.connectionHints(error))
        }
        var settings = ["SET statement_timeout = 0", "SET lock_timeout = 0", "SET idle_in_transaction_session_timeout = 0"]
        if connection.serverVersion >= 140000 { settings.append("SET idle_session_timeout = 0") }
        for setting in settings { _ = try run(setting, doing: "prepare the session") }
    }

    public var connectionDescription: String { connection.description }
    public var serverVersionNumber: Int { connection.serverVersion }

    public func controlData() throws(BackupFailure) -> ServerControlData {
        let system = try run("SELECT system_identifier::text, catalog_version_no::text FROM pg_catalog.pg_control_system()",
                             doing: "read the server's control data")
        let initial = try run("SELECT bytes_per_wal_segment::text FROM pg_catalog.pg_control_init()",
                              doing: "read the server's control data")
        guard system.rowCount == 1, initial.rowCount == 1,
              let identifier = system.text(row: 0, column: 0).flatMap({ UInt64($0) }),
              let catalog = system.text(row: 0, column: 1).flatMap({ UInt32($0) }),
              let segmentSize = initial.text(row: 0, column: 0).flatMap({ UInt64($0) }) else {
            throw BackupFailure(.server, "unexpected result from pg_control_system() or pg_control_init(): expected one row")
        }
        return ServerControlData(systemIdentifier: identifier, catalogVersion: catalog, walSegmentSize: segmentSize)
    }

    public func dataDirectorySetting() -> String? {
        // pg_settings hides data_directory from roles without pg_read_all_settings: no row, no check.
        guard let result = try? connection.execute("SELECT setting FROM pg_catalog.pg_settings WHERE name = 'data_directory'"),
              result.rowCount == 1 else { return nil }
        return result.text(row: 0, column: 0)
    }

    public func startBackup(label: String, fast: Bool) throws(BackupFailure) -> String {
        let sql = connection.serverVersion >= 150000
            ? "SELECT pg_catalog.pg_backup_start($1, $2)::text"
            : "SELECT pg_catalog.pg_start_backup($1, $2, false)::text"
        let result = try run(sql, [label, fast ? "true" : "false"], doing: "start the backup")
        guard result.rowCount == 1, result.columnCount == 1, let lsn = result.text(row: 0, column: 0) else {
            throw BackupFailure(.server, "unexpected result from the backup start: expected one row")
        }
        return lsn
    }

    public func stopBackup(waitForArchive: Bool) throws(BackupFailure) -> BackupStopResult {
        let wait = waitForArchive ? "true" : "false"
        let (sql, parameters): (String, [String]) = switch connection.serverVersion {
        case 150000...: ("SELECT lsn::text, labelfile, spcmapfile FROM pg_catalog.pg_backup_stop($1)", [wait])
        case 100000...: ("SELECT lsn::text, labelfile, spcmapfile FROM pg_catalog.pg_stop_backup(false, $1)", [wait])
        default: ("SELECT lsn::text, labelfile, spcmapfile FROM pg_catalog.pg_stop_backup(false)", [])
        }
        let result = try run(sql, parameters, binary: true, doing: "stop the backup")
        guard result.rowCount == 1, result.columnCount == 3, let lsn = result.text(row: 0, column: 0),
              let labelfile = result.bytes(row: 0, column: 1) else {
            throw BackupFailure(.server, "unexpected result from the backup stop: expected one row of three columns")
        }
        return BackupStopResult(stopLSN: lsn, labelfile: labelfile, spcmapfile: result.bytes(row: 0, column: 2) ?? [])
    }

    public func archiverStatus() throws(BackupFailure) -> ArchiverStatus {
        let result = try run("SELECT pg_catalog.current_setting('archive_mode'), pg_catalog.pg_is_in_recovery()::text, last_archived_wal, last_failed_wal FROM pg_catalog.pg_stat_archiver",
                             doing: "read the archiver's status")
        guard result.rowCount == 1, result.columnCount == 4, let mode = result.text(row: 0, column: 0),
              let recovery = result.text(row: 0, column: 1) else {
            throw BackupFailure(.server, "unexpected result from pg_stat_archiver: expected one row")
        }
        return ArchiverStatus(archiveMode: mode, inRecovery: recovery == "true",
                              lastArchivedWAL: result.text(row: 0, column: 2), lastFailedWAL: result.text(row: 0, column: 3))
    }

    public func segmentArchived(_ segment: String) -> Bool? {
        let sql = "SELECT (pg_catalog.pg_stat_file('pg_wal/archive_status/' || $1 || '.ready', true)).size IS NULL"
        guard let result = try? connection.execute(sql, [segment]), result.rowCount == 1,
              let answer = result.text(row: 0, column: 0) else { return nil }
        return answer == "t"
    }

    public func watch() -> String? {
        connection.watch(milliseconds: 250, interval: 10, answerTimeout: 60)
    }

    public func cancel() { connection.cancel() }

    // MARK: -

    private func run(_ sql: String, _ parameters: [String] = [], binary: Bool = false,
                     doing what: String) throws(BackupFailure) -> PostgresResult {
        do {
            return try connection.execute(sql, parameters, binary: binary)
        } catch {
            var hints = error.details
            if error.sqlState == "42501" {
                hints.append(connection.serverVersion >= 150000
                    ? "Connect as a superuser, or GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO the backup role."
                    : "Connect as a superuser, or GRANT EXECUTE ON FUNCTION pg_start_backup(text, boolean, boolean), pg_stop_backup(boolean, boolean) TO the backup role.")
            }
            if !connection.isAlive && what != "prepare the session" {
                throw BackupFailure(.sessionLost, "could not \(what): the session ended: \(error.message)",
                                    hints: ["The backup is void. Check the server log: the session was terminated, or the connection was lost."])
            }
            if error.sqlState == "57014" {
                // Cancelled: by our own signal handling (the caller reports the signal) or by an operator.
                throw BackupFailure(.server, "could not \(what): \(error.message)")
            }
            throw BackupFailure(.server, "could not \(what): \(error.message)", hints: hints)
        }
    }

    static func connectionHints(_ error: PostgresError) -> [String] {
        var hints = error.details
        let text = ([error.message] + error.details).joined(separator: " ")
        if text.contains("password authentication failed") || text.contains("no password supplied") {
            hints.append("Check the password in PGPASSWORD or in the password file (PGPASSFILE, ~/.pgpass); walferry-backup never prints it.")
        }
        return hints
    }
}
