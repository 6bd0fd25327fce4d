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

/// One run's state, so that a failure at any step can remove what was written. Its steps: this file
/// (checking the data directory, copying the files, the order of the whole), BackupWAL.swift (the stop,
/// the wait for the archiver, and the WAL taken from the archive).
final class BaseBackupRun {
    let request: BackupRequest
    let console: Console
    let abortFlag = BackupAbortFlag()
    var output: BackupOutputFiles?
    var progress: BackupProgress?
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
        let dataDirectory = DataDirectory(path: FilePath(request.dataDirectory))
        let pgVersion: String
        do {
            pgVersion = try dataDirectory.majorVersion()
        } catch {
            throw BackupFailure(.wrongDataDirectory, "could not read file \"\(dataDirectory.versionFile)\": \(error)",
                                hints: ["Is \"\(request.dataDirectory)\" a PostgreSQL data directory? Give it with -D or PGDATA."])
        }

        // The lock first: a second run must fail at once, before it touches the server.
        if let lockDirectory = destination.lockDirectory { lock = try BackupLock(directory: lockDirectory) }

        // Signals are blocked before any thread starts, so that every thread inherits the mask.
        let server = try connect()
        signals = try SignalWatcher(flag: abortFlag, onSignal: { [server] in server.cancel() })
        info("connected to \(server.connectionDescription)")
        let control = try checkDataDirectory(dataDirectory, pgVersion: pgVersion, server: server)
        let treeOptions = BackupTreeOptions(majorVersion: pgVersion, catalogVersion: control.catalogVersion)

        // Tablespaces need a tarball each: refuse a single-tarball output before starting anything.
        let tablespaces = try listTablespaces(dataDirectory.path)
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

        var manifest = BackupManifest(serverMajorVersion: server.serverVersionNumber / 10000, systemIdentifier: control.systemIdentifier)
        let base = try copyFiles(dataDirectory, options: treeOptions, files: files, manifest: &manifest)

        // The copy is over: the session must still be there for the stop to mean anything.
        heartbeat?.stop()
        heartbeat = nil
        try abortFlag.check()
        let stop = try stopBackup(server: server, startLSN: startLSN, startText: startText, segmentSize: control.walSegmentSize)

        let now = wallClockSeconds()
        let labelCRC = try base.addFile(path: Array("backup_label".utf8), contents: stop.result.labelfile, mtime: now)
        manifest.addFile(path: Array("backup_label".utf8), size: UInt64(stop.result.labelfile.count), mtime: now, crc32c: labelCRC)
        if !stop.result.spcmapfile.isEmpty {
            let mapCRC = try base.addFile(path: Array("tablespace_map".utf8), contents: stop.result.spcmapfile, mtime: now)
            manifest.addFile(path: Array("tablespace_map".utf8), size: UInt64(stop.result.spcmapfile.count), mtime: now, crc32c: mapCRC)
        }
        if let walArchive = request.walArchive {
            try addWAL(from: walArchive, stop: stop, control: control, walDirectory: treeOptions.walDirectoryName,
                       into: base, mtime: now, serverVersion: server.serverVersionNumber)
        }

        let manifestBytes = manifest.encoded(timeline: stop.label.timeline, startLSN: stop.label.startLSN, endLSN: stop.stopLSN)
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
        if let finalPath { info("backup complete: \"\(finalPath)\"") } else { info("backup complete") }

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

    /// Checks that `dataDirectory` is the data directory of the server connected to (version, system
    /// identifier, and the data_directory setting when the role may read it); returns the server's
    /// control data.
    func checkDataDirectory(_ dataDirectory: DataDirectory, pgVersion: String,
                            server: any BackupServer) throws(BackupFailure) -> ServerControlData {
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
        let localIdentifier: UInt64
        do {
            localIdentifier = try dataDirectory.systemIdentifier()
        } catch {
            throw BackupFailure(.wrongDataDirectory, "could not read file \"\(dataDirectory.controlFile)\": \(error)")
        }
        guard localIdentifier == control.systemIdentifier else {
            throw BackupFailure(.wrongDataDirectory,
                                "data directory \"\(request.dataDirectory)\" belongs to database system \(localIdentifier), but the server's is \(control.systemIdentifier)",
                                hints: ["Give with -D the data directory of the server that -d connects to."])
        }
        if let setting = server.dataDirectorySetting(), let mine = realPath(dataDirectory.path),
           let theirs = realPath(FilePath(setting)), mine != theirs {
            // Same system identifier, other directory: a standby's copy, or a stale copy of this one.
            throw BackupFailure(.wrongDataDirectory,
                                "data directory \"\(request.dataDirectory)\" is not the server's data directory \"\(setting)\"",
                                hints: ["It has the same system identifier: is it a standby's data directory, or a copy?"])
        }
        guard control.walSegmentSize > 0, WALSegmentSize(bytes: control.walSegmentSize) != nil else {
            throw BackupFailure(.server, "the server reported an invalid WAL segment size \(control.walSegmentSize)")
        }
        return control
    }

    /// Copies the tablespaces (a tarball each), then the data directory with global/pg_control last,
    /// into the output; returns base.tar.bz2's stream, still open for backup_label and the WAL.
    func copyFiles(_ dataDirectory: DataDirectory, options: BackupTreeOptions, files: BackupOutputFiles,
                   manifest: inout BackupManifest) throws(BackupFailure) -> BackupTarStream {
        // The walk comes after the start: files created before the checkpoint are all listed.
        let warn: (String) -> Void = { [console] in console.warning($0) }
        let tree = try listDataDirectory(dataDirectory.path, options: options, warn: warn)
        var tablespaceTrees: [(Tablespace, [BackupTreeEntry])] = []
        for tablespace in tree.tablespaces {
            tablespaceTrees.append((tablespace, try listTablespace(tablespace, options: options, warn: warn)))
        }
        guard let controlEntry = tree.controlFile else {
            throw BackupFailure(.wrongDataDirectory, "file \"\(dataDirectory.controlFile)\" is missing or not a regular file")
        }
        let totalBytes = ([tree.entries, [controlEntry]] + tablespaceTrees.map { $0.1 })
            .joined().reduce(UInt64(0)) { total, entry in
                if case .file(let size) = entry.kind { return total + size }
                return total
            }
        progress = request.forceProgress || isatty(2) == 1 ? BackupProgress(total: totalBytes) : nil

        let owner = (try? entryStatus(dataDirectory.path, following: true)).map { ($0.uid, $0.gid) } ?? (getuid(), getgid())
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
                        manifest.addFile(path: entry.manifestPath.bytes, size: size, mtime: entry.mtime, crc32c: crc)
                    }
                }
            }
        }
        for (tablespace, entries) in tablespaceTrees {
            let name = String(decoding: tablespace.oid, as: UTF8.self)
            let stream = try tarStream(name + ".tar.bz2")
            try copy(entries, into: stream)
            try stream.finish()
            info("wrote \(name).tar.bz2 (\(stream.compressedBytes) bytes)")
        }
        let base = try tarStream("base.tar.bz2")
        try copy(tree.entries, into: base)
        try copy([controlEntry], into: base)
        return base
    }
}
