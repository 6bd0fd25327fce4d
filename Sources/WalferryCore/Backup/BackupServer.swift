// What walferry-backup needs from the server, as a protocol, and the values it returns.
//
// Like pgBackRest's Db interface (src/db/db.c), which wraps the SQL a backup sends, except that the
// implementation is in another module: WalferryPostgres implements it with libpq, so that WalferryCore
// never links libpq (28 shared libraries, 7.5 ms at every start of the per-segment tools), and tests
// could give another.

/// The server side of a backup: one session, kept for the whole backup.
///
/// Implementations are used from two threads: the backup's (everything but `watch` and `cancel`) and
/// the heartbeat's (`watch`), never at the same time for the same method; `cancel` may come from the
/// signal thread at any time.
public protocol BackupServer: AnyObject, Sendable {
    /// "host=… port=… dbname=… user=…", never the password.
    var connectionDescription: String { get }
    /// PQserverVersion: 150018 for 15.18, 90624 for 9.6.24.
    var serverVersionNumber: Int { get }
    /// pg_control_system() and pg_control_init(): the system identifier, the catalog version and the
    /// WAL segment size.
    func controlData() throws(BackupFailure) -> ServerControlData
    /// The data_directory setting, or nil when the role may not read it.
    func dataDirectorySetting() -> String?
    /// Starts the backup; returns the start LSN as the server prints it.
    func startBackup(label: String, fast: Bool) throws(BackupFailure) -> String
    /// Stops the backup; with `waitForArchive`, the server waits until the WAL it needs is archived.
    func stopBackup(waitForArchive: Bool) throws(BackupFailure) -> BackupStopResult
    /// archive_mode, whether the server is a standby, and pg_stat_archiver's last archived and
    /// failed files.
    func archiverStatus() throws(BackupFailure) -> ArchiverStatus
    /// Whether pg_wal/archive_status holds no `.ready` file for `segment` any more (it was archived),
    /// or nil when the role may not look (pg_stat_file needs superuser or pg_read_server_files).
    func segmentArchived(_ segment: String) -> Bool?
    /// Blocks for up to about half a second watching the session; returns nil while it is alive, or why
    /// it is not. Called in a loop by the heartbeat thread between start and stop.
    func watch() -> String?
    /// Cancels the query running on the session, if any (from the signal thread).
    func cancel()
}

/// What the server's control functions say.
public struct ServerControlData: Sendable {
    public var systemIdentifier: UInt64
    public var catalogVersion: UInt32
    public var walSegmentSize: UInt64

    public init(systemIdentifier: UInt64, catalogVersion: UInt32, walSegmentSize: UInt64) {
        self.systemIdentifier = systemIdentifier
        self.catalogVersion = catalogVersion
        self.walSegmentSize = walSegmentSize
    }
}

/// What the server says about its archiving.
public struct ArchiverStatus: Sendable {
    public var archiveMode: String
    public var inRecovery: Bool
    public var lastArchivedWAL: String?
    public var lastFailedWAL: String?

    public init(archiveMode: String, inRecovery: Bool, lastArchivedWAL: String?, lastFailedWAL: String?) {
        self.archiveMode = archiveMode
        self.inRecovery = inRecovery
        self.lastArchivedWAL = lastArchivedWAL
        self.lastFailedWAL = lastFailedWAL
    }
}

/// What pg_backup_stop returns, byte for byte.
public struct BackupStopResult: Sendable {
    public var stopLSN: String
    public var labelfile: [UInt8]
    public var spcmapfile: [UInt8]

    public init(stopLSN: String, labelfile: [UInt8], spcmapfile: [UInt8]) {
        self.stopLSN = stopLSN
        self.labelfile = labelfile
        self.spcmapfile = spcmapfile
    }
}

/// The major version as PG_VERSION spells it: "9.6" for 90624, "15" for 150018.
public func majorVersionString(_ versionNumber: Int) -> String {
    versionNumber >= 100_000 ? "\(versionNumber / 10000)" : "\(versionNumber / 10000).\(versionNumber / 100 % 100)"
}
