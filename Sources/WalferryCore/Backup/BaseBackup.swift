// walferry-backup's work: a non-exclusive base backup through SQL, written as bzip2 tarballs.
//
// Equivalent to the manual sequence `SELECT pg_backup_start(label, fast)` (pg_start_backup on 9.6-14),
// `tar -cjf` of the data directory, `SELECT * FROM pg_backup_stop()`, and writing the returned
// labelfile and spcmapfile as backup_label and tablespace_map, and to what `pg_basebackup -Ft -X fetch`
// produces, with these differences:
// - the copy is made by this process from -D, checked first to be the connected server's data
//   directory (PG_VERSION, system identifier, data_directory when the role may read it);
// - the exclusions, the order (global/pg_control last) and the rules for files that change are the
//   server's own (BackupExclusions, BackupTree, BackupTarStream); backup_label and tablespace_map come
//   at the end of base.tar.bz2, since the SQL interface hands them over only at the stop;
// - the session that started the backup is watched all along (a heartbeat), and the backup fails at
//   once, its output removed, when the session dies or a signal arrives;
// - --wal-archive takes the WAL from the archive after the stop, instead of from the server;
// - the output becomes visible only once complete and durable (BackupOutput), and --keep prunes older
//   backups and WAL through walferry-cleanup's code (BackupRetention).
//
// The SQL is behind `BackupServer`, which WalferryPostgres implements with libpq, so that this module
// never links libpq.

import Glibc

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

/// What walferry-backup was asked to do.
public struct BackupRequest: Sendable {
    public var dataDirectory: String
    public var output: String
    public var label: String?
    public var fastCheckpoint = false
    public var walArchive: String?
    public var keep: Int?
    public var jobs = BZip2.defaultJobs
    public var compressionLevel = 9
    public var verbose = false
    /// Show the progress line even when standard error is not a terminal.
    public var forceProgress = false
    /// For walferry's own tests only (WALFERRY_BACKUP_TEST_DELAY_MS): sleep this long before copying
    /// each file, so that a test can act while a small cluster is being copied.
    public var testDelayPerFileMicroseconds: UInt32 = 0

    public init(dataDirectory: String, output: String) {
        self.dataDirectory = dataDirectory
        self.output = output
    }
}

/// The major version as PG_VERSION spells it: "9.6" for 90624, "15" for 150018.
public func majorVersionString(_ versionNumber: Int) -> String {
    versionNumber >= 100_000 ? "\(versionNumber / 10000)" : "\(versionNumber / 10000).\(versionNumber / 100 % 100)"
}

/// Runs a backup and returns the exit status; every message is printed on `console`.
public func runBaseBackup(_ request: BackupRequest, console: Console,
                          connect: () throws(BackupFailure) -> any BackupServer) -> BackupExitStatus {
    let run = BaseBackupRun(request: request, console: console)
    do {
        try run.run(connect: connect)
        return run.retentionFailure.map { $0.status } ?? .success
    } catch {
        run.abandon()
        // A signal or a lost session explains whatever failed after it (a cancelled query, a write
        // cut short): report the cause.
        let failure = run.abortFlag.current?.failure ?? error
        failure.report(to: console)
        return failure.status
    }
}

/// One run's state, so that a failure at any step can remove what was written.
private final class BaseBackupRun {
    let request: BackupRequest
    let console: Console
    let abortFlag = BackupAbortFlag()
    var output: BackupOutputFiles?
    var heartbeat: Heartbeat?
    var signals: SignalWatcher?
    var lock: BackupLock?
    var retentionFailure: BackupFailure?

    init(request: BackupRequest, console: Console) {
        self.request = request
        self.console = console
    }

    func info(_ text: String) { if request.verbose { console.info(text) } }

    /// Stops the threads and removes the partial output.
    func abandon() {
        heartbeat?.stop()
        heartbeat = nil
        if let message = output?.discard() { console.error(message) }
        signals?.stop()
        signals = nil
    }

    func run(connect: () throws(BackupFailure) -> any BackupServer) throws(BackupFailure) {
        let destination = try BackupDestination.resolve(request.output)
        if destination == .standardOutput && isatty(1) == 1 {
            throw BackupFailure(.usage, "refusing to write a compressed tarball to a terminal",
                                hints: ["Redirect standard output to a file or a pipe, or give a directory to -o."])
        }
        if request.keep != nil, case .directory = destination {} else if request.keep != nil {
            throw BackupFailure(.usage, "--keep needs -o to name a directory of backups")
        }
        let dataDirectory = Array(request.dataDirectory.utf8)
        let versionFile = joinPath(dataDirectory, Array("PG_VERSION".utf8))
        let pgVersion: String
        do {
            pgVersion = String(decoding: try readWholeFile(versionFile, limit: 64), as: UTF8.self)
                .split(separator: "\n").first.map(String.init) ?? ""
        } catch {
            throw BackupFailure(.wrongDataDirectory, "could not read file \"\(displayPath(versionFile))\": \(error)",
                                hints: ["Is \"\(request.dataDirectory)\" a PostgreSQL data directory? Give it with -D or PGDATA."])
        }

        // The lock first: a second run must fail at once, before it touches the server.
        if let lockDirectory = destination.lockDirectory { lock = try BackupLock(directory: lockDirectory) }

        // Signals are blocked before any thread starts, so that every thread inherits the mask.
        let server = try connect()
        signals = try SignalWatcher(flag: abortFlag, onSignal: { [server] in server.cancel() })
        info("connected to \(server.connectionDescription)")

        // Is -D this server's data directory?
        let version = server.serverVersionNumber
        guard version >= 90600 else {
            throw BackupFailure(.server, "server version \(majorVersionString(version)) is not supported",
                                hints: ["walferry-backup needs PostgreSQL 9.6 or later (non-exclusive backups)."])
        }
        let major = majorVersionString(version)
        guard pgVersion == major else {
            throw BackupFailure(.wrongDataDirectory,
                                "data directory \"\(request.dataDirectory)\" is of PostgreSQL \(pgVersion), but the server is PostgreSQL \(major)",
                                hints: ["Give with -D the data directory of the server that -d connects to."])
        }
        let control = try server.controlData()
        let controlFile = joinPath(dataDirectory, Array("global/pg_control".utf8))
        let localIdentifier: UInt64
        do {
            let bytes = try readWholeFile(controlFile, limit: 8)
            guard bytes.count == 8 else { throw Errno(EIO) }
            // ControlFileData starts with the system identifier, in the server's (native) byte order.
            localIdentifier = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        } catch {
            throw BackupFailure(.wrongDataDirectory, "could not read file \"\(displayPath(controlFile))\": \(error)")
        }
        guard localIdentifier == control.systemIdentifier else {
            throw BackupFailure(.wrongDataDirectory,
                                "data directory \"\(request.dataDirectory)\" belongs to database system \(localIdentifier), but the server's is \(control.systemIdentifier)",
                                hints: ["Give with -D the data directory of the server that -d connects to."])
        }
        if let setting = server.dataDirectorySetting(), let mine = realPath(request.dataDirectory),
           let theirs = realPath(setting), mine != theirs {
            // Same system identifier, other directory: a standby's copy, or a stale copy of this one.
            throw BackupFailure(.wrongDataDirectory,
                                "data directory \"\(request.dataDirectory)\" is not the server's data directory \"\(setting)\"",
                                hints: ["It has the same system identifier: is it a standby's data directory, or a copy?"])
        }
        guard control.walSegmentSize > 0, WALSegmentSize(bytes: control.walSegmentSize) != nil else {
            throw BackupFailure(.server, "the server reported an invalid WAL segment size \(control.walSegmentSize)")
        }
        let treeOptions = BackupTreeOptions(majorVersion: major, catalogVersion: control.catalogVersion)

        // Tablespaces need a tarball each: refuse a single-tarball output before starting anything.
        let tablespaces = try listTablespaces(dataDirectory)
        if !tablespaces.isEmpty, destination != .directory(request.output) {
            throw BackupFailure(.usage, "the cluster has \(tablespaces.count) tablespace(s), which a single tarball cannot hold",
                                hints: ["Give a directory to -o: each tablespace gets its own <oid>.tar.bz2 there, as pg_basebackup -Ft writes."])
        }

        let startSeconds = wallClockSeconds()
        let files = BackupOutputFiles(destination: destination, startSeconds: startSeconds)
        output = files
        try files.prepare()

        let label = request.label ?? "walferry-backup \(backupDirectoryName(startSeconds))"
        let startText = try server.startBackup(label: label, fast: request.fastCheckpoint)
        guard let startLSN = parseLSN(startText) else {
            throw BackupFailure(.server, "the server returned an invalid start location \"\(startText)\"")
        }
        info("backup started at \(startText)")
        heartbeat = try Heartbeat(flag: abortFlag, watch: { [server] in server.watch() })

        // The walk comes after the start: files created before the checkpoint are all listed.
        let warn: (String) -> Void = { [console] in console.warning($0) }
        var tree = try listDataDirectory(dataDirectory, options: treeOptions, warn: warn)
        var tablespaceTrees: [(Tablespace, [BackupTreeEntry])] = []
        for tablespace in tree.tablespaces {
            tablespaceTrees.append((tablespace, try listTablespace(tablespace, options: treeOptions, warn: warn)))
        }
        if tree.controlFile == nil {
            throw BackupFailure(.wrongDataDirectory, "file \"\(displayPath(controlFile))\" is missing or not a regular file")
        }
        let totalBytes = ([tree.entries] + tablespaceTrees.map { $0.1 } + [tree.controlFile.map { [$0] } ?? []])
            .joined().reduce(UInt64(0)) { total, entry in
                if case .file(let size) = entry.kind { return total + size }
                return total
            }
        let progress = request.forceProgress || isatty(2) == 1 ? BackupProgress(total: totalBytes) : nil

        let owner = (try? entryStatus(dataDirectory, following: true)).map { ($0.uid, $0.gid) } ?? (getuid(), getgid())
        var manifest = BackupManifest(serverMajorVersion: version / 10000, systemIdentifier: control.systemIdentifier)
        func tarStream(_ name: String) throws(BackupFailure) -> BackupTarStream {
            let (fd, displayName) = try files.open(tarball: name)
            return try BackupTarStream(fd: fd, displayName: displayName, level: request.compressionLevel,
                                       jobs: request.jobs, abort: abortFlag, progress: progress,
                                       delayPerFile: request.testDelayPerFileMicroseconds, owner: owner)
        }
        func copy(_ entries: [BackupTreeEntry], into stream: BackupTarStream) throws(BackupFailure) {
            for entry in entries {
                switch entry.kind {
                case .directory:
                    try stream.addDirectory(entry)
                case .file:
                    if let (size, crc) = try stream.addFile(entry) {
                        manifest.addFile(path: entry.manifestPath, size: size, mtime: entry.mtime, crc32c: crc)
                    }
                }
            }
        }

        // Tablespaces first, each in its own tarball, then the data directory, then pg_control.
        for (tablespace, entries) in tablespaceTrees {
            let stream = try tarStream(displayPath(tablespace.oid) + ".tar.bz2")
            try copy(entries, into: stream)
            try stream.finish()
            info("wrote \(displayPath(tablespace.oid)).tar.bz2 (\(stream.compressedBytes) bytes)")
        }
        let base = try tarStream("base.tar.bz2")
        try copy(tree.entries, into: base)
        if let controlEntry = tree.controlFile {
            tree.entries = []
            try copy([controlEntry], into: base)
        }

        // The copy is over: the session must still be there for the stop to mean anything.
        heartbeat?.stop()
        heartbeat = nil
        try abortFlag.check()
        // The server's own wait for the archive (pg_backup_stop(true)) checks once, then sleeps a whole
        // second at a time: a second lost on every backup. On 15+, whose pg_stat_archiver is updated the
        // moment a file is archived, the wait is done here instead, polling every 50 ms. Older servers
        // and standbys wait themselves.
        let archiver = try server.archiverStatus()
        let waitHere = version >= 150000 && !archiver.inRecovery
        let stop = try server.stopBackup(waitForArchive: !waitHere)
        try abortFlag.check()
        guard let stopLSN = parseLSN(stop.stopLSN), let labelInfo = BackupLabel(labelfile: stop.labelfile),
              let lastSegment = walSegmentsNeeded(timeline: labelInfo.timeline, startLSN: labelInfo.startLSN,
                                                  stopLSN: stopLSN, segmentSize: control.walSegmentSize)?.last else {
            throw BackupFailure(.server, "the server returned a stop location or labelfile that cannot be read")
        }
        if waitHere {
            try waitForArchiving(lastSegment, server: server)
        }
        info("backup stopped at \(stop.stopLSN); start WAL file \(labelInfo.startWALFile), timeline \(labelInfo.timeline)")
        if labelInfo.startLSN != startLSN {
            console.warning("the labelfile's start location \(formatLSN(labelInfo.startLSN)) differs from pg_backup_start's \(startText)")
        }

        let now = wallClockSeconds()
        let labelCRC = try base.addFile(path: Array("backup_label".utf8), contents: stop.labelfile, mtime: now)
        manifest.addFile(path: Array("backup_label".utf8), size: UInt64(stop.labelfile.count), mtime: now, crc32c: labelCRC)
        if !stop.spcmapfile.isEmpty {
            let mapCRC = try base.addFile(path: Array("tablespace_map".utf8), contents: stop.spcmapfile, mtime: now)
            manifest.addFile(path: Array("tablespace_map".utf8), size: UInt64(stop.spcmapfile.count), mtime: now, crc32c: mapCRC)
        }

        if let walArchive = request.walArchive {
            guard let segments = walSegmentsNeeded(timeline: labelInfo.timeline, startLSN: labelInfo.startLSN,
                                                   stopLSN: stopLSN, segmentSize: control.walSegmentSize) else {
                throw BackupFailure(.server, "the backup's WAL range \(formatLSN(labelInfo.startLSN)) to \(stop.stopLSN) is invalid")
            }
            let walDirectory = treeOptions.walDirectoryName
            var names = segments
            if labelInfo.timeline > 1 {
                names.insert(WALFileName.timelineHistory(labelInfo.timeline).description, at: 0)
            }
            for name in names {
                let isHistory = name.hasSuffix(".history")
                guard let contents = try readFromArchive(walArchive, name, control: control) else {
                    if isHistory { continue }  // the server may not have archived it yet; recovery asks for it
                    throw BackupFailure(.failure, "WAL file \"\(name)\" is not in the archive \"\(walArchive)\"",
                                        hints: ["Is archive_command copying to this directory, and is archive_mode on?"])
                }
                try base.addFile(path: walDirectory + Array("/\(name)".utf8), contents: contents, mtime: now)
                // Marked as archived already, so that the restored server does not archive it again.
                try base.addFile(path: walDirectory + Array("/archive_status/\(name).done".utf8), contents: [], mtime: now)
            }
            info("added \(segments.count) WAL segment(s) from \"\(walArchive)\"")
        }

        let manifestBytes = manifest.encoded(timeline: labelInfo.timeline, startLSN: labelInfo.startLSN, endLSN: stopLSN)
        if destination != .directory(request.output) {
            // A single tarball carries its manifest as its last member, as `pg_basebackup -Ft -D -` does.
            try base.addFile(path: Array("backup_manifest".utf8), contents: manifestBytes, mtime: now)
        }
        try base.finish()
        progress?.finish()
        info("wrote base.tar.bz2 (\(base.compressedBytes) bytes)")
        if destination == .directory(request.output) { try files.writeFile("backup_manifest", manifestBytes) }
        let finalPath = try files.commit()
        output = nil
        signals?.stop()
        signals = nil
        if let finalPath { info("backup complete: \"\(displayPath(finalPath))\"") } else { info("backup complete") }

        if let keep = request.keep {
            let (outcome, failure) = applyRetention(directory: request.output, keep: keep, walArchive: request.walArchive,
                                                    segmentSize: control.walSegmentSize, console: console)
            for name in outcome.removedBackups { info("removed old backup \"\(name)\"") }
            if let cutoff = outcome.walCutoff { info("removed WAL older than \(cutoff) from \"\(request.walArchive ?? "")\"") }
            if let failure {
                failure.report(to: console)
                retentionFailure = failure
            }
        }
    }

    /// Waits until the server has archived `segment` (the last one the backup needs), as
    /// pg_backup_stop(true) does: with a warning every minute, interruptible by a signal.
    ///
    /// The archiver takes the ready files in name order (only timeline history files go first) and
    /// retries a failed one until it succeeds. A backup history file, `START.OFFSET.backup`, sorts
    /// after its start segment and before the next one: when the archiver is behind, it is archived
    /// before the segments that follow the backup's start, so it says nothing of the stop segment.
    /// Hence `segment` is archived once the last archived segment or backup history file is named
    /// `segment` or later (the same timeline's names compare as their positions). Anything else leaves
    /// it open; after a few seconds archive_status itself is asked, when the role may.
    func waitForArchiving(_ segment: String, server: any BackupServer) throws(BackupFailure) {
        let started = monotonicSeconds()
        var warned = 0
        while true {
            let status = try server.archiverStatus()
            if status.archiveMode == "off" {
                console.warning("WAL archiving is not enabled; the WAL up to \(segment) must reach the archive by other means for the backup to be usable")
                return
            }
            if let last = status.lastArchivedWAL, let name = WALFileName(last), name.compression == nil, last >= segment {
                switch name.kind {
                case .segment, .backupHistory: return
                case .partial, .timelineHistory: break
                }
            }
            let waited = Int(monotonicSeconds() - started)
            if waited >= 3, server.segmentArchived(segment) == true { return }
            if waited >= 60 * (warned + 1) {
                warned += 1
                console.warning("still waiting for WAL segment \(segment) to be archived (\(waited) seconds elapsed)")
                console.hint("Check that your archive_command is executing properly.\(status.lastFailedWAL.map { " The last file that failed is \($0)." } ?? "")")
            }
            for _ in 0..<5 {
                try abortFlag.check()
                usleep(10_000)
            }
        }
    }

    /// `name` from the archive, plain or `.bz2`, checked as walferry-restore checks what it delivers:
    /// a segment's size and first page against its name and this server's system identifier, a
    /// history file's syntax; a `.bz2` file's every stream CRC. Nil only when neither form exists: a
    /// file that exists but cannot be read or is damaged fails the backup, never passes as missing.
    func readFromArchive(_ archive: String, _ name: String, control: ServerControlData) throws(BackupFailure) -> [UInt8]? {
        let root = Array(archive.utf8)
        let plain = joinPath(root, Array(name.utf8))
        let compressed = joinPath(root, Array((name + ".bz2").utf8))
        var contents: [UInt8]
        let path: [UInt8]
        do throws(Errno) {
            contents = try readWholeFile(plain, limit: 1 << 31)
            path = plain
        } catch .noSuchFileOrDirectory {
            let packed: [UInt8]
            do throws(Errno) {
                packed = try readWholeFile(compressed, limit: 1 << 31)
            } catch .noSuchFileOrDirectory {
                return nil
            } catch {
                throw BackupFailure(.failure, "could not read file \"\(displayPath(compressed))\": \(error)")
            }
            path = compressed
            do {
                contents = try BZip2.decompress(packed, jobs: request.jobs)
            } catch {
                throw BackupFailure(.failure, "could not decompress file \"\(displayPath(compressed))\": \(error)",
                                    hints: ["The archived copy is damaged; the backup cannot carry it."])
            }
        } catch {
            throw BackupFailure(.failure, "could not read file \"\(displayPath(plain))\": \(error)")
        }
        guard let walName = WALFileName(name) else { return contents }
        if case .timelineHistory = walName.kind {
            if let problem = timelineHistoryProblem(contents, timeline: walName.timeline) {
                throw BackupFailure(.failure, "archive file \"\(displayPath(path))\" is not a valid timeline history file: \(problem)")
            }
            return contents
        }
        let facts: WALSegmentFacts
        do throws(WALSegmentProblem) {
            facts = try checkWALSegment(name: walName, firstBytes: contents.prefix(64), fileSize: UInt64(contents.count))
        } catch {
            throw BackupFailure(.failure, "archive file \"\(displayPath(path))\" is not a valid WAL segment \"\(name)\": \(error)",
                                hints: ["Is archive_command copying files whole? A partial copy must never carry the final name."])
        }
        guard facts.systemIdentifier == control.systemIdentifier, UInt64(facts.segmentSize.bytes) == control.walSegmentSize else {
            throw BackupFailure(.failure, "archive file \"\(displayPath(path))\" belongs to database system \(facts.systemIdentifier) with \(facts.segmentSize) segments, "
                                + "but the server is database system \(control.systemIdentifier)",
                                hints: ["Is --wal-archive another cluster's archive?"])
        }
        return contents
    }
}

/// The tablespaces in pg_tblspc (symbolic links named by OID).
private func listTablespaces(_ dataDirectory: [UInt8]) throws(BackupFailure) -> [Tablespace] {
    let directory = joinPath(dataDirectory, Array("pg_tblspc".utf8))
    let names: [[UInt8]]
    do {
        names = try directoryNames(directory)
    } catch {
        throw BackupFailure(.failure, "could not open directory \"\(displayPath(directory))\": \(error)")
    }
    var result: [Tablespace] = []
    for name in names {
        let path = joinPath(directory, name)
        guard (try? entryStatus(path))?.kind == .symlink, let target = try? symbolicLinkTarget(path) else { continue }
        result.append(Tablespace(oid: name, location: target))
    }
    return result
}

/// The canonical absolute path, or nil when it cannot be resolved. The corresponding C function is
/// `realpath`.
func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}
