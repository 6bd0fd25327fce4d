// walferry-recover's work: a data directory made from a walferry backup, ready to start as a standby
// or as a point-in-time recovery, in one command.
//
// Equivalent to the manual sequence (README, "Restoring a backup, step by step"): stop the server,
// move the old data directory aside, `tar -xjf` every tarball, `chown -R postgres:postgres`, write
// the signal file and the recovery settings, start. And to pgBackRest's restore and Barman's recover,
// with these differences:
// - the backup is chosen from walferry-backup's output directory (BackupCatalog.swift): the newest
//   complete one, a named one, or the newest that ended before a time or LSN target;
// - everything that can be refused is refused before the first byte is written: a server running
//   in the target (even with --force), a target that is not empty (without --force), a target that
//   is a mount point, a backup off the target timeline's history (RecoverChecks.swift);
// - the tarballs are decompressed by the parallel bzip2 engine and read by the project's tar reader,
//   and every file is checked against backup_manifest as it is written (BackupTarballReader.swift),
//   into a temporary sibling of the target; the WAL the backup needs is then looked for in its pg_wal
//   and the archive; the whole is made durable with syncfs(2), and only then renamed into place. A
//   failure, a signal or a kill -9 at any moment leaves nothing under the final name: a leftover
//   temporary sibling is removed by the next run;
// - with --force, the old data directory is swapped out atomically (renameat2 RENAME_EXCHANGE) and
//   kept under a named sibling, never deleted;
// - run as root, files belong to the target parent's owner or --owner, never to root.
// Signals are taken by a SignalThread that only trips a flag, as walferry-backup's SignalWatcher does,
// not by Interruption.swift, which removes one registered file and ends the process at once: here a
// whole tree is to be removed, by the extracting thread, which checks the flag at every entry and
// every decoded block.

import CWalferrySystem
import Glibc

/// What walferry-recover was asked to do.
public struct RecoverRequest: Sendable {
    /// -B: a walferry-backup output directory, one backup directory, or a single tarball.
    public var backupSource: String
    /// -D: the data directory to create.
    public var dataDirectory: String
    public var backupID: String?
    public var mode: RecoveryMode
    public var target: RecoveryTarget?
    /// The --target-time as seconds since the epoch, for choosing the backup.
    public var targetTimeSeconds: Int64?
    public var targetAction: String?
    public var targetTimeline: String?
    public var walArchive: String?
    public var primaryConninfo: String?
    public var keepArchiving = false
    public var tablespaceMappings: [TablespaceMapping] = []
    public var owner: String?
    public var force = false
    public var jobs = BZip2.defaultJobs
    public var verbose = false
    public var forceProgress = false
    /// The walferry-restore to name in restore_command.
    public var restoreProgram = "walferry-restore"
    /// --reader NAME: register the new server as a reader of --wal-archive (Cleanup/ArchiveReaders.swift)
    /// before it is put in place, and, for a standby, report through archive_cleanup_command.
    public var reader: String?
    /// The walferry-cleanup to name in archive_cleanup_command.
    public var cleanupProgram = "walferry-cleanup"

    public init(backupSource: String, dataDirectory: String, mode: RecoveryMode) {
        self.backupSource = backupSource
        self.dataDirectory = dataDirectory
        self.mode = mode
    }
}

/// Runs a recovery and returns the exit status; every message is printed on `console`.
public func runRecover(_ request: RecoverRequest, console: Console) -> RecoverExitStatus {
    let run = RecoverRun(request: request, console: console)
    do {
        try run.run()
        return .success
    } catch {
        run.abandon()
        if let number = run.abort.current {
            RecoverFailure(.interrupted, "interrupted by signal \(number) (\(signalName(number))); nothing was left under \"\(run.target)\"").report(to: console)
            return .interrupted
        }
        error.report(to: console)
        return error.status
    }
}

/// The suffix of the temporary sibling; a leftover one is removed by the next run.
let recoverPartialSuffix = ".walferry-recover-partial"

final class RecoverRun {
    let request: RecoverRequest
    let console: Console
    let abort = RecoverAbortFlag()
    let target: FilePath
    var temporary: FilePath?
    var temporaryLock: Int32 = -1
    /// Tablespace temporary directories, and the locations this run created.
    var tablespaceTemporaries: [FilePath] = []
    var createdLocations: [FilePath] = []
    var signals: SignalThread?

    init(request: RecoverRequest, console: Console) {
        self.request = request
        self.console = console
        target = FilePath(TablespaceMapping.canonical(absolutePath(request.dataDirectory)))
    }

    func info(_ text: String) { if request.verbose { console.info(text) } }

    /// Removes what this run wrote (never anything under a final name).
    func abandon() {
        if let temporary {
            if let problem = removeTreeReporting(temporary) { console.warning(problem) }
        }
        for path in tablespaceTemporaries {
            if let problem = removeTreeReporting(path) { console.warning(problem) }
        }
        for path in createdLocations.reversed() { _ = path.withCString { rmdir($0) } }
        if temporaryLock >= 0 { _ = close(temporaryLock) }
        temporaryLock = -1
        signals?.stop()
    }

    private func removeTreeReporting(_ path: FilePath) -> String? {
        do {
            try removeTree(path)
            return nil
        } catch {
            return "could not remove temporary directory \"\(path)\": \(error)"
        }
    }

    func run() throws(RecoverFailure) {
        // 1. The target: its parent, a running server, its contents, its file system.
        let parent = target.parent
        guard (try? entryStatus(parent, following: true))?.kind == .directory else {
            throw RecoverFailure(.usage, "directory \"\(parent)\" of data directory \"\(target)\" does not exist")
        }
        let targetState = try inspectTarget(parent: parent)
        let owner = try resolveOwner(parent: parent)

        // 2. The backup.
        let backup = try chooseBackup()
        info("backup \"\(backup.id)\" chosen from \"\(request.backupSource)\"")
        let archive = try openArchive()
        if let manifest = backup.manifest { try checkTimelineOf(backup, manifest, archive: archive) }

        // 3. The temporary sibling, locked; signals taken by a thread before any other starts.
        do {
            signals = try SignalThread(signals: [SIGINT, SIGTERM, SIGHUP]) { [abort] number in abort.trip(number) }
        } catch {
            throw RecoverFailure(.failure, "could not start the signal thread: \(error)")
        }
        let temporary = parent.appending(Array(".".utf8) + target.lastComponent + Array(recoverPartialSuffix.utf8))
        try prepareTemporary(temporary, owner: owner)

        // 4. Extraction with verification.
        let total = backup.manifest?.files.reduce(UInt64(0)) { $0 + $1.size } ?? 0
        let showProgress = request.forceProgress
        let progress = showProgress ? BackupProgress(total: total, program: console.program) : nil
        let sink = ExtractingSink(layout: ExtractionLayout(root: temporary), owner: owner, abort: abort, progress: progress)
        let verifier = BackupVerifier(manifest: backup.manifest, name: backup.path.description)
        try read(backup.tarballs[0], verifier: verifier, sink: sink)
        let tablespaces = try placeTablespaces(backup: backup, sink: sink, owner: owner)
        for tarball in backup.tarballs.dropFirst() { try read(tarball, verifier: verifier, sink: sink) }
        do {
            try verifier.finish()
        } catch {
            throw failure(error)
        }
        progress?.finish()
        guard let manifest = verifier.manifest else { throw RecoverFailure(.damaged, "backup \"\(backup.id)\" holds no backup_manifest") }
        if backup.isSingleTarball { try checkTimelineOf(backup, manifest, archive: archive) }
        info("extracted and verified \(sink.filesWritten) files of backup \"\(backup.id)\"")
        if let bytes = verifier.manifestBytes ?? (try? readWholeFile(backup.path.appending("backup_manifest"), limit: 1 << 30)) {
            // As pg_basebackup -Fp leaves it: pg_verifybackup can check the directory before it starts.
            try writeSmallFile(temporary.appending("backup_manifest"), bytes, owner: owner)
        }

        // 5. The WAL the backup needs.
        let segmentSize = self.segmentSize(temporary: temporary, archive: archive)
        let firstSegment = walSegmentName(timeline: manifest.walRanges[0].timeline, lsn: manifest.startLSN, segmentSize: segmentSize) ?? "?"
        let firstFromArchive = try checkWAL(manifest: manifest, backup: backup, temporary: temporary, archive: archive, segmentSize: segmentSize)
        if let name = request.reader, let archive {
            try register(name, firstFromArchive: firstFromArchive, manifest: manifest, archive: archive, segmentSize: segmentSize)
        }

        // 6. Tablespace links and map, recovery settings.
        try finishTablespaces(tablespaces, temporary: temporary, owner: owner)
        let version = String(decoding: (try? readWholeFile(temporary.appending("PG_VERSION"), limit: 64)) ?? [], as: UTF8.self)
            .split(separator: "\n").first.map(String.init) ?? ""
        try writeSettings(temporary: temporary, version: version, backup: backup, owner: owner)

        // 7. Durable, then in place.
        try abortCheck()
        try syncEverything(temporary, tablespaces: tablespaces)
        if let pid = livePostmasterPID(in: target) {
            throw RecoverFailure(.refused, "a server (PID \(pid)) started in data directory \"\(target)\" during the recovery; nothing was changed there")
        }
        try abortCheck()
        let aside = try publish(temporary: temporary, parent: parent, state: targetState, tablespaces: tablespaces)
        signals?.stop()
        signals = nil
        if let aside { console.info("the old data directory was moved to \"\(aside)\"") }
        report(backup: backup, manifest: manifest, firstSegment: firstSegment, version: version, owner: owner)
    }

    private func abortCheck() throws(RecoverFailure) {
        if abort.current != nil { throw RecoverFailure(.interrupted, "interrupted") }
    }

    private func failure(_ problem: BackupProblem) -> RecoverFailure {
        let status: RecoverExitStatus = switch problem.kind {
        case .unreadable, .damaged: .damaged
        case .output: .failure
        case .interrupted: .interrupted
        }
        return RecoverFailure(status, problem.message, hints: problem.hints)
    }

    private func read(_ tarball: BackupTarball, verifier: BackupVerifier, sink: ExtractingSink) throws(RecoverFailure) {
        do {
            try readBackupTarball(tarball, verifier: verifier, sink: sink, jobs: request.jobs)
        } catch {
            throw failure(error)
        }
        info("read \"\(tarball.path)\"")
    }

    // MARK: - The target

    enum TargetState { case absent, empty, occupied }

    func inspectTarget(parent: FilePath) throws(RecoverFailure) -> TargetState {
        let status: EntryStatus
        do throws(Errno) {
            status = try entryStatus(target)
        } catch .noSuchFileOrDirectory {
            return .absent
        } catch {
            throw RecoverFailure(.failure, "could not access data directory \"\(target)\": \(error)")
        }
        guard status.kind == .directory else {
            throw RecoverFailure(.refused, "\"\(target)\" exists and is not a directory")
        }
        if let pid = livePostmasterPID(in: target) {
            throw RecoverFailure(.refused, "a server (PID \(pid)) is running in data directory \"\(target)\"",
                                 hints: ["Stop it first (pg_ctl stop, or systemctl stop); --force never replaces a running server's data directory."])
        }
        var targetInfo = stat(), parentInfo = stat()
        if stat(target.description, &targetInfo) == 0, stat(parent.description, &parentInfo) == 0,
           targetInfo.st_dev != parentInfo.st_dev {
            throw RecoverFailure(.refused, "data directory \"\(target)\" is a mount point, on another file system than its parent \"\(parent)\"",
                                 hints: ["walferry-recover builds the data directory next to it and renames it into place; give a directory inside the mount point."])
        }
        let names: [[UInt8]]
        do {
            names = try directoryNames(target)
        } catch {
            throw RecoverFailure(.failure, "could not read directory \"\(target)\": \(error)")
        }
        if names.isEmpty { return .empty }
        guard request.force else {
            throw RecoverFailure(.refused, "data directory \"\(target)\" is not empty",
                                 hints: ["Give --force to replace it: the old one is moved to a named sibling once the new one is complete, never deleted."])
        }
        return .occupied
    }

    /// The owner to give the files to: nil to leave them as written (not root).
    func resolveOwner(parent: FilePath) throws(RecoverFailure) -> (uid: UInt32, gid: UInt32)? {
        let running = getuid()
        var chosen: (uid: UInt32, gid: UInt32, name: String)?
        if let name = request.owner {
            guard let entry = lookUpUser(name) else { throw RecoverFailure(.usage, "user \"\(name)\" does not exist") }
            chosen = (entry.uid, entry.gid, name)
        }
        if running != 0 {
            if let chosen, chosen.uid != running {
                throw RecoverFailure(.usage, "only root can give the files to user \"\(chosen.name)\"",
                                     hints: ["Run walferry-recover as \"\(chosen.name)\", or as root."])
            }
            return nil
        }
        if let chosen {
            guard chosen.uid != 0 else { throw RecoverFailure(.usage, "--owner must not be root: the server refuses to run as root") }
            return (chosen.uid, chosen.gid)
        }
        guard let status = try? entryStatus(parent, following: true) else { return nil }
        guard status.uid != 0 else {
            throw RecoverFailure(.usage, "the data directory would belong to root, the owner of \"\(parent)\"",
                                 hints: ["Give --owner with the user the server runs as (usually postgres)."])
        }
        // The user's primary group, as `chown -R postgres:` would give (the parent's group may be root's).
        return (status.uid, primaryGroup(status.uid) ?? status.gid)
    }

    // MARK: - The backup

    func chooseBackup() throws(RecoverFailure) -> CatalogedBackup {
        let source = FilePath(request.backupSource)
        let status: EntryStatus
        do {
            status = try entryStatus(source, following: true)
        } catch {
            throw RecoverFailure(.noBackup, "could not access backup \"\(request.backupSource)\": \(error)")
        }
        func open(_ path: FilePath) throws(RecoverFailure) -> CatalogedBackup {
            do {
                return try CatalogedBackup(at: path)
            } catch {
                throw failure(error)
            }
        }
        // A single tarball, or one backup's directory.
        if status.kind == .regular || (try? entryStatus(source.appending("backup_manifest")))?.kind == .regular {
            if let id = request.backupID, id != String(decoding: source.lastComponent, as: UTF8.self) {
                throw RecoverFailure(.usage, "--backup \(id) does not name backup \"\(request.backupSource)\"",
                                     hints: ["Give the directory of backups to -B to choose among them."])
            }
            let backup = try open(source)
            try checkEndsBeforeTarget(backup)
            return backup
        }
        let names: [String]
        do {
            names = try completeBackups(in: request.backupSource)
        } catch {
            throw RecoverFailure(.noBackup, error.message)
        }
        guard !names.isEmpty else {
            throw RecoverFailure(.noBackup, "no complete backup in \"\(request.backupSource)\"",
                                 hints: ["walferry-backup -o DIR writes one timestamped directory per backup there."])
        }
        if let id = request.backupID {
            guard names.contains(id) else {
                throw RecoverFailure(.noBackup, "no complete backup \"\(id)\" in \"\(request.backupSource)\"",
                                     hints: ["The complete backups there: \(names.suffix(5).joined(separator: ", "))."])
            }
            let backup = try open(source.appending(id))
            try checkEndsBeforeTarget(backup)
            return backup
        }
        // The newest (by stop time) that ended before the target, when the target says.
        var candidates: [CatalogedBackup] = []
        for name in names { candidates.append(try open(source.appending(name))) }
        candidates.sort { ($0.stopTime ?? 0, $0.id) < ($1.stopTime ?? 0, $1.id) }
        for backup in candidates.reversed() where endsBeforeTarget(backup) { return backup }
        throw RecoverFailure(.noBackup, "no complete backup in \"\(request.backupSource)\" ended before the recovery target",
                             hints: ["The oldest one there ended at \(candidates.first.flatMap { $0.stopTime }.map(manifestTimestamp) ?? "an unknown time")."])
    }

    func endsBeforeTarget(_ backup: CatalogedBackup) -> Bool {
        guard let manifest = backup.manifest else { return true }
        switch request.target {
        case .lsn(let lsn): return manifest.endLSN <= lsn
        case .time:
            guard let seconds = request.targetTimeSeconds, let stop = backup.stopTime else { return true }
            return stop <= seconds
        default: return true
        }
    }

    func checkEndsBeforeTarget(_ backup: CatalogedBackup) throws(RecoverFailure) {
        guard !endsBeforeTarget(backup) else { return }
        throw RecoverFailure(.unrecoverable, "backup \"\(backup.id)\" ended after the recovery target, which it cannot reach",
                             hints: ["Choose an older backup."])
    }

    func openArchive() throws(RecoverFailure) -> ArchiveDirectory? {
        guard let path = request.walArchive else { return nil }
        do {
            return try ArchiveDirectory(path: path)
        } catch {
            throw RecoverFailure(.usage, "could not open archive directory \"\(path)\": \(error)")
        }
    }

    func checkTimelineOf(_ backup: CatalogedBackup, _ manifest: ParsedBackupManifest, archive: ArchiveDirectory?) throws(RecoverFailure) {
        let wanted: UInt32
        switch request.targetTimeline {
        case nil, "latest"?:
            guard let archive else { return }
            wanted = newestTimeline(in: archive, from: manifest.timeline)
        case "current"?:
            return
        case let text?:
            guard let number = UInt32(text), number > 0 else {
                throw RecoverFailure(.usage, "invalid --target-timeline \"\(text)\": must be latest, current or a timeline number")
            }
            wanted = number
        }
        try checkTimeline(backup: backup, manifest: manifest, target: wanted, archive: archive)
        info("backup \"\(backup.id)\" on timeline \(manifest.timeline) is in the history of timeline \(wanted)")
    }

    // MARK: - Writing

    func prepareTemporary(_ temporary: FilePath, owner: (uid: UInt32, gid: UInt32)?) throws(RecoverFailure) {
        if (try? entryStatus(temporary)) != nil {
            // A run that died left it. A running one holds its lock.
            let fd = temporary.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) }
            if fd >= 0 {
                defer { _ = close(fd) }
                if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                    throw RecoverFailure(.refused, "another walferry-recover is writing \"\(temporary)\"")
                }
            }
            do {
                try removeTree(temporary)
            } catch {
                throw RecoverFailure(.failure, "could not remove the leftover temporary directory \"\(temporary)\": \(error)")
            }
            info("removed the leftover \"\(temporary)\" of an earlier run")
        }
        do {
            try makeDirectory(temporary, mode: 0o700)
        } catch {
            throw RecoverFailure(.failure, "could not create directory \"\(temporary)\": \(error)")
        }
        self.temporary = temporary
        temporaryLock = temporary.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) }
        if temporaryLock >= 0 { _ = flock(temporaryLock, LOCK_EX | LOCK_NB) }
        if let owner, lchown(temporary.description, owner.uid, owner.gid) != 0 {
            throw RecoverFailure(.failure, "could not change the owner of directory \"\(temporary)\": \(Errno.current)")
        }
    }

    func writeSmallFile(_ path: FilePath, _ bytes: [UInt8], owner: (uid: UInt32, gid: UInt32)?) throws(RecoverFailure) {
        _ = path.withCString { unlink($0) }
        let fd = path.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw RecoverFailure(.failure, "could not create file \"\(path)\": \(Errno.current)") }
        defer { _ = close(fd) }
        if let failure = bytes.withUnsafeBytes({ writeAll(fd, $0) }) {
            throw RecoverFailure(.failure, "could not write to file \"\(path)\": \(failure)")
        }
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
            throw RecoverFailure(.failure, "could not change the owner of file \"\(path)\": \(Errno.current)")
        }
    }

    // MARK: - Tablespaces

    struct PlacedTablespace {
        let oid: String
        let location: FilePath
        /// The version directory's name inside the location, and its temporary name.
        var versionDirectory: [UInt8]?
    }

    /// Decides where each tablespace goes, checks the place, and tells the sink.
    func placeTablespaces(backup: CatalogedBackup, sink: ExtractingSink,
                          owner: (uid: UInt32, gid: UInt32)?) throws(RecoverFailure) -> [PlacedTablespace] {
        var locations: [(oid: String, location: [UInt8])] = []
        if let map = sink.tablespaceMap {
            guard let parsed = parseTablespaceMap(map) else {
                throw RecoverFailure(.damaged, "file \"tablespace_map\" of backup \"\(backup.id)\" is not valid")
            }
            locations = parsed
        }
        for (oid, link) in sink.tablespaceLinks.sorted(by: { $0.key < $1.key }) where !locations.contains(where: { $0.oid == oid }) {
            locations.append((oid, link))
        }
        var used = Set<String>()
        var placed: [PlacedTablespace] = []
        for (oid, original) in locations {
            let originalPath = TablespaceMapping.canonical(String(decoding: original, as: UTF8.self))
            var location = originalPath
            if let mapping = request.tablespaceMappings.first(where: { $0.old == originalPath }) {
                location = mapping.new
                used.insert(mapping.old)
            }
            placed.append(PlacedTablespace(oid: oid, location: FilePath(location)))
        }
        for mapping in request.tablespaceMappings where !used.contains(mapping.old) {
            throw RecoverFailure(.usage, "tablespace mapping \"\(mapping.old)=\(mapping.new)\" names no tablespace of backup \"\(backup.id)\"",
                                 hints: ["Its tablespaces: \(placed.isEmpty ? "none" : locations.map { String(decoding: $0.location, as: UTF8.self) }.joined(separator: ", "))."])
        }
        var layout = sink.layout
        for space in placed {
            guard backup.tarballs.contains(where: { $0.tablespaceOID == space.oid }) else {
                throw RecoverFailure(.damaged, "file \"\(backup.path.appending("\(space.oid).tar.bz2"))\" of tablespace \(space.oid) is missing")
            }
            try prepareLocation(space.location, owner: owner)
            layout.tablespaces[space.oid] = space.location
        }
        sink.layout = layout
        return placed
    }

    func prepareLocation(_ location: FilePath, owner: (uid: UInt32, gid: UInt32)?) throws(RecoverFailure) {
        var exists = true
        do throws(Errno) {
            _ = try entryStatus(location, following: true)
        } catch .noSuchFileOrDirectory {
            exists = false
        } catch {
            throw RecoverFailure(.failure, "could not access tablespace directory \"\(location)\": \(error)")
        }
        if exists {
            guard (try? entryStatus(location, following: true))?.kind == .directory else {
                throw RecoverFailure(.refused, "tablespace directory \"\(location)\" exists and is not a directory")
            }
            var names: [[UInt8]]
            do {
                names = try directoryNames(location)
                if names.count == 1, names[0].elementsEqual(tablespacePartialName.utf8) {
                    // A run that died left it: nothing of it was ever renamed into place.
                    try removeTree(location.appending(tablespacePartialName))
                    names = []
                }
            } catch {
                throw RecoverFailure(.failure, "could not read directory \"\(location)\": \(error)")
            }
            guard names.isEmpty else {
                throw RecoverFailure(.refused, "tablespace directory \"\(location)\" exists but is not empty",
                                     hints: ["Give -T \(location)=NEWDIR to put the tablespace elsewhere."])
            }
        } else {
            var missing: [FilePath] = []
            var walk = location
            while (try? entryStatus(walk, following: true)) == nil, walk.bytes.count > 1 {
                missing.append(walk)
                walk = walk.parent
            }
            for path in missing.reversed() {
                do {
                    try makeDirectory(path, mode: 0o700)
                } catch {
                    throw RecoverFailure(.failure, "could not create directory \"\(path)\": \(error)")
                }
                createdLocations.append(path)
                if let owner { _ = lchown(path.description, owner.uid, owner.gid) }
            }
        }
        // The version directory is written under a temporary name inside the location.
        tablespaceTemporaries.append(location.appending(tablespacePartialName))
    }

    func finishTablespaces(_ placed: [PlacedTablespace], temporary: FilePath, owner: (uid: UInt32, gid: UInt32)?) throws(RecoverFailure) {
        guard !placed.isEmpty else { return }
        let links = temporary.appending("pg_tblspc")
        for space in placed {
            let link = links.appending(space.oid)
            _ = link.withCString { unlink($0) }
            let made = space.location.withCString { target in link.withCString { symlink(target, $0) } }
            guard made == 0 else { throw RecoverFailure(.failure, "could not create symbolic link \"\(link)\": \(Errno.current)") }
            if let owner { _ = lchown(link.description, owner.uid, owner.gid) }
        }
        try writeSmallFile(temporary.appending("tablespace_map"),
                           encodeTablespaceMap(placed.map { ($0.oid, $0.location.bytes) }), owner: owner)
    }

    // MARK: - WAL

    func segmentSize(temporary: FilePath, archive: ArchiveDirectory?) -> UInt64 {
        if let archive, let identity = try? archive.readIdentity() { return UInt64(identity.segmentSize.bytes) }
        for directory in ["pg_wal", "pg_xlog"] {
            let path = temporary.appending(directory)
            for name in (try? directoryNames(path)) ?? [] {
                guard let wal = WALFileName(bytes: name), wal.kind == .segment, wal.compression == nil,
                      let status = try? entryStatus(path.appending(name)), WALSegmentSize(bytes: status.size) != nil else { continue }
                return status.size
            }
        }
        return UInt64(WALSegmentSize.default.bytes)
    }

    /// Checks that every segment the backup needs is in its pg_wal or in the archive; returns the first
    /// one that only the archive holds.
    func checkWAL(manifest: ParsedBackupManifest, backup: CatalogedBackup, temporary: FilePath, archive: ArchiveDirectory?,
                  segmentSize: UInt64) throws(RecoverFailure) -> String? {
        guard let needed = walSegmentsNeeded(timeline: manifest.timeline, startLSN: manifest.startLSN, stopLSN: manifest.endLSN,
                                             segmentSize: segmentSize) else {
            throw RecoverFailure(.damaged, "backup \"\(backup.id)\" has an invalid WAL range in its manifest")
        }
        // A backup taken on a standby that changed timelines starts on an older one.
        var names = needed
        if manifest.walRanges.count > 1 {
            names = manifest.walRanges.flatMap { range in
                walSegmentsNeeded(timeline: range.timeline, startLSN: range.startLSN, stopLSN: max(range.endLSN, range.startLSN + 1),
                                  segmentSize: segmentSize) ?? []
            }
        }
        var fromArchive = 0
        var first: String?
        for name in names {
            let inTarball = ["pg_wal", "pg_xlog"].contains { (try? entryStatus(temporary.appending($0).appending(name)))?.kind == .regular }
            if inTarball { continue }
            if let archive, archiveHolds(archive, name) {
                fromArchive += 1
                first = first ?? name
                continue
            }
            throw RecoverFailure(.unrecoverable, "WAL file \"\(name)\" needed by backup \"\(backup.id)\" is neither in the backup nor in \(request.walArchive.map { "the archive \"\($0)\"" } ?? "a WAL archive")",
                                 hints: [request.walArchive == nil ? "Give the WAL archive with --wal-archive." : "Is this the archive the primary's archive_command writes to?"])
        }
        info("the \(names.count) WAL segment(s) the backup needs are there (\(fromArchive) in the archive)")
        return first
    }

    /// --reader: registers the new server as a reader of the archive at the first segment it will
    /// fetch from it (the first the backup needs that its pg_wal lacks, else the one after its stop),
    /// under the readers' lock, before the data directory is put in place: from then on no cleanup
    /// removes that WAL. A registration that fails fails the recovery, leaving nothing behind.
    func register(_ name: String, firstFromArchive: String?, manifest: ParsedBackupManifest, archive: ArchiveDirectory,
                  segmentSize: UInt64) throws(RecoverFailure) {
        var segment = firstFromArchive
        if segment == nil, let size = WALSegmentSize(bytes: segmentSize) {
            segment = WALFileName(timeline: manifest.timeline, segmentNumber: manifest.endLSN / segmentSize + 1, segmentSize: size).description
        }
        guard let segment else { throw RecoverFailure(.failure, "could not name the first WAL segment reader \"\(name)\" needs") }
        do {
            let previous = try ArchiveReaders.register(name, at: segment, in: archive)
            if let previous, previous.oldestKeptWALFile != segment {
                console.info("reader \"\(name)\" moved from \"\(previous.oldestKeptWALFile)\" to \"\(segment)\"")
            }
        } catch {
            throw RecoverFailure(error.status == .usage ? .usage : .failure, error.message, hints: error.hints)
        }
        info("registered as reader \"\(name)\" of archive \"\(archive.path)\" at \"\(segment)\"")
    }

    // MARK: - Settings

    func writeSettings(temporary: FilePath, version: String, backup: CatalogedBackup, owner: (uid: UInt32, gid: UInt32)?) throws(RecoverFailure) {
        let now = wallClockSeconds()
        var restoreCommand: String?
        if let walArchive = request.walArchive {
            let mode = request.mode == .standby ? "--standby" : "--pitr"
            restoreCommand = "\(request.restoreProgram) \(mode) \(shellQuoted(absolutePath(walArchive) + "/%f")) %p"
        }
        var cleanupCommand: String?
        if let walArchive = request.walArchive, let reader = request.reader, request.mode == .standby {
            // -x .bz2: the archive may hold either form; plain files are examined as well.
            cleanupCommand = "\(request.cleanupProgram) --reader \(reader) -x .bz2 \(shellQuoted(absolutePath(walArchive))) %r"
        }
        let settings = RecoverySettings(
            mode: request.mode, target: request.mode == .targeted ? request.target : nil,
            targetAction: request.mode == .targeted ? request.targetAction : nil, targetTimeline: request.targetTimeline,
            restoreCommand: restoreCommand, archiveCleanupCommand: cleanupCommand, primaryConninfo: request.primaryConninfo,
            archiveModeOff: request.mode == .targeted && !request.keepArchiving,
            backupID: backup.id, timestamp: manifestTimestamp(now))
        let major = Int(version.split(separator: ".").first ?? "") ?? 0
        let autoConf = temporary.appending("postgresql.auto.conf")
        let old = (try? readWholeFile(autoConf, limit: 16 << 20)) ?? []
        for name in ["standby.signal", "recovery.signal", "recovery.conf"] {
            _ = temporary.appending(name).withCString { unlink($0) }
        }
        if major >= 12 {
            try writeSmallFile(autoConf, settings.updatedAutoConf(old, includeRecovery: true), owner: owner)
            try writeSmallFile(temporary.appending(request.mode == .standby ? "standby.signal" : "recovery.signal"), [], owner: owner)
        } else {
            try writeSmallFile(autoConf, settings.updatedAutoConf(old, includeRecovery: false), owner: owner)
            try writeSmallFile(temporary.appending("recovery.conf"), settings.recoveryConf(), owner: owner)
        }
    }

    // MARK: - Publishing

    func syncEverything(_ temporary: FilePath, tablespaces: [PlacedTablespace]) throws(RecoverFailure) {
        var roots = [temporary]
        roots += tablespaces.map { $0.location }
        for root in roots {
            let fd = root.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            guard fd >= 0 else { throw RecoverFailure(.failure, "could not open directory \"\(root)\": \(Errno.current)") }
            defer { _ = close(fd) }
            if walferry_syncfs(fd) != 0 {
                throw RecoverFailure(.failure, "could not sync the file system of \"\(root)\": \(Errno.current)")
            }
        }
        info("synced everything to disk")
    }

    /// Renames the tablespaces' and the data directory's temporary names into place. Returns where
    /// the old data directory went, with --force.
    func publish(temporary: FilePath, parent: FilePath, state: TargetState, tablespaces: [PlacedTablespace]) throws(RecoverFailure) -> FilePath? {
        for path in tablespaceTemporaries {
            let names = (try? directoryNames(path)) ?? []
            for name in names {
                let final = path.parent.appending(name)
                do {
                    try renameNoReplace(path.appending(name), final)
                    try syncDirectory(path.parent)
                } catch {
                    throw RecoverFailure(.failure, "could not rename \"\(path.appending(name))\" to \"\(final)\": \(error)")
                }
            }
            _ = path.withCString { rmdir($0) }
        }
        tablespaceTemporaries = []
        createdLocations = []
        var aside: FilePath?
        switch state {
        case .absent:
            do {
                try renameNoReplace(temporary, target)
            } catch {
                throw RecoverFailure(.failure, "could not rename \"\(temporary)\" to \"\(target)\": \(error)")
            }
        case .empty:
            let renamed = temporary.withCString { from in target.withCString { rename(from, $0) } }
            guard renamed == 0 else {
                throw RecoverFailure(.failure, "could not rename \"\(temporary)\" to \"\(target)\": \(Errno.current)")
            }
        case .occupied:
            var name = target.description + ".walferry-recover-old-" + backupDirectoryName(wallClockSeconds())
            var suffix = 2
            while (try? entryStatus(FilePath(name))) != nil {
                name = target.description + ".walferry-recover-old-" + backupDirectoryName(wallClockSeconds()) + "-\(suffix)"
                suffix += 1
            }
            let exchanged = temporary.withCString { from in target.withCString { walferry_rename_exchange(AT_FDCWD, from, AT_FDCWD, $0) } }
            guard exchanged == 0 else {
                throw RecoverFailure(.failure, "could not exchange \"\(temporary)\" and \"\(target)\": \(Errno.current)")
            }
            // The old directory is now under the temporary name: give it its own, kept name.
            do {
                try renameNoReplace(temporary, FilePath(name))
            } catch {
                self.temporary = nil
                throw RecoverFailure(.failure, "could not rename the old data directory \"\(temporary)\" to \"\(name)\": \(error)",
                                     hints: ["The recovered data directory is in place; the old one is still at \"\(temporary)\"."])
            }
            aside = FilePath(name)
        }
        self.temporary = nil
        do {
            try syncDirectory(parent)
        } catch {
            throw RecoverFailure(.failure, "could not fsync directory \"\(parent)\": \(error)")
        }
        if temporaryLock >= 0 { _ = close(temporaryLock) }
        temporaryLock = -1
        return aside
    }

    // MARK: - The final message

    func report(backup: CatalogedBackup, manifest: ParsedBackupManifest, firstSegment: String, version: String,
                owner: (uid: UInt32, gid: UInt32)?) {
        guard request.verbose || isatty(2) == 1 else { return }
        console.info("data directory \"\(target)\" recovered from backup \"\(backup.id)\", every file verified")
        var start = "pg_ctl -D \(shellQuoted(target.description)) start"
        let components = target.description.split(separator: "/")
        if components.count == 5, components[0] == "var", components[1] == "lib", components[2] == "postgresql" {
            start = "systemctl start postgresql@\(components[3])-\(components[4])"
        } else if (try? entryStatus(FilePath("/usr/lib/postgresql/\(version)/bin/pg_ctl"))) != nil {
            start = "/usr/lib/postgresql/\(version)/bin/" + start
            if getuid() == 0, let owner, let name = userName(owner.uid) { start = "runuser -u \(name) -- " + start }
        }
        console.info("start it with: \(start)")
        var plan = "it will replay the WAL from \(firstSegment) (\(formatLSN(manifest.startLSN)))"
        switch request.mode {
        case .standby:
            plan += " and then run as a standby"
            if request.primaryConninfo != nil { plan += ", streaming from the primary" }
            if request.walArchive != nil { plan += request.primaryConninfo != nil ? " and falling back to the archive" : ", following the archive" }
        case .targeted:
            switch request.target {
            case .time(let text)?: plan += " up to \(text)"
            case .lsn(let lsn)?: plan += " up to \(formatLSN(lsn))"
            case .xid(let xid)?: plan += " up to transaction \(xid)"
            case .name(let name)?: plan += " up to restore point \"\(name)\""
            case .immediate?: plan += " up to the end of the backup"
            case nil: plan += " to the end of the archive"
            }
            plan += ", then \(request.target == nil ? "promote" : (request.targetAction ?? "pause"))"
        }
        console.info(plan)
    }
}

/// A word for a shell (restore_command runs through one): single-quoted unless plain.
func shellQuoted(_ text: String) -> String {
    let plain = text.utf8.allSatisfy { byte in
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "/._-%+=:,@".utf8.contains(byte)
    }
    if plain && !text.isEmpty { return text }
    var out = "'"
    for character in text { out += character == "'" ? "'\\''" : String(character) }
    return out + "'"
}

/// The user `name`: uid and gid. The corresponding C function is `getpwnam_r`.
func lookUpUser(_ name: String) -> (uid: UInt32, gid: UInt32)? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var storage = [CChar](repeating: 0, count: 4096)
    let found: (UInt32, UInt32)? = storage.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress, getpwnam_r(name, &entry, base, buffer.count, &result) == 0, result != nil else { return nil }
        return (UInt32(entry.pw_uid), UInt32(entry.pw_gid))
    }
    return found
}

/// The primary group of user `uid`. The corresponding C function is `getpwuid_r`.
func primaryGroup(_ uid: UInt32) -> UInt32? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var storage = [CChar](repeating: 0, count: 4096)
    return storage.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress, getpwuid_r(uid_t(uid), &entry, base, buffer.count, &result) == 0,
              result != nil else { return nil }
        return UInt32(entry.pw_gid)
    }
}

/// The name of user `uid`. The corresponding C function is `getpwuid_r`.
func userName(_ uid: UInt32) -> String? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var storage = [CChar](repeating: 0, count: 4096)
    return storage.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress, getpwuid_r(uid_t(uid), &entry, base, buffer.count, &result) == 0,
              result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }
}

/// The name a tablespace's version directory is written under inside its location.
let tablespacePartialName = ".walferry-recover-partial"
