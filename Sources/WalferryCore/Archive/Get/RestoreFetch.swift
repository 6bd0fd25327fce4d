// walferry-restore's work: fetch one file from the archive for restore_command.
//
// Like `cp /mnt/archive/%f %p` (the documented example), but it never hands the server a bad file
// and never lets an error pass for "not in the archive":
// - it looks for %f, then %f.bz2 (the other order when SOURCE ends in `.bz2`), and decompresses with
//   the parallel bzip2 engine, which checks every stream's CRCs and refuses trailing garbage;
// - the file is written under a temporary name beside DEST and renamed over it (ReplacingFile.swift),
//   so DEST is never empty or partial, whatever happens, SIGKILL included (cp truncates DEST first);
// - before delivery, a segment (or `.partial`) is checked: its size, page magic, page address and
//   timeline against the requested name (checkWALSegment), and its system identifier, segment size
//   and version against the archive's identity record (ArchiveIdentity.swift), which must in turn
//   name the system identifier of the data directory in the working directory, when there is one; a
//   timeline history file is parsed as the server will parse it;
// - exit status 1 only for a confirmed miss: the archive directory opened, its identity record was
//   read, and neither form of the file exists (ENOENT, nothing else). Every other failure is fatal
//   (200 to 203) in targeted recovery and 1, with an error, on a standby (RecoveryMode.swift);
// - on SIGTERM it removes its temporary file and dies by SIGTERM, which the startup process reads as
//   a shutdown (the CLI installs Interruption with `.reraise`);
// - with `--prefetch N --spool DIR`, a segment is served from the spool when a verified copy is there,
//   and a detached worker fetches the next N (RestoreSpool.swift, RestorePrefetch.swift).

import Glibc

/// The exit statuses of walferry-restore, chosen for what the server does with them
/// (docs/server-rules.md §4): 1 is "not available" (a standby retries it; a targeted recovery
/// ends there and promotes), and any status from 126 on but 143 stops the server. The failure
/// statuses are used as they are in targeted recovery; on a standby every one of them becomes 1.
public enum RestoreExitStatus: Int32, ToolExitStatus, CaseIterable {
    /// The file was delivered to DEST, verified.
    case success = 0
    /// The file is not in the archive (a clean look-up found neither form); on a standby, also any
    /// failure, reported on standard error.
    case notAvailable = 1
    /// Bad arguments: SOURCE is not the archive path of a WAL file name, DEST not the server's `%p`,
    /// an unknown option.
    case usage = 200
    /// An I/O error: the archive directory or a file in it could not be opened or read, DEST could
    /// not be written.
    case failure = 201
    /// The archived file failed verification: a corrupt or truncated `.bz2`, a segment whose size or
    /// header does not match its name, WAL of another cluster, an invalid timeline history file.
    case invalid = 202
    /// The archive has no (valid) identity record, or it belongs to another cluster than the data
    /// directory.
    case identity = 203

    /// The status a failure exits with in `mode`: itself in targeted recovery, 1 on a standby.
    public func inMode(_ mode: RecoveryMode) -> RestoreExitStatus {
        mode == .standby && rawValue >= 200 ? .notAvailable : self
    }
}

/// What walferry-restore was asked to do.
public struct RestoreRequest: Sendable {
    /// The archive path of `%f`: the archive directory and the file name, optionally with `.bz2`.
    public var source: String
    /// `%p`: `pg_wal/RECOVERYXLOG` or `pg_wal/RECOVERYHISTORY` relative to the data directory, or the
    /// final path of the file when pg_rewind calls.
    public var destination: String
    /// Standby or targeted recovery, and why.
    public var mode: RecoveryModeDecision
    /// Deliver `%f.partial` when a segment is not in the archive.
    public var partial = false
    /// Segments to prefetch into `spool` (0: no prefetching).
    public var prefetch = 0
    /// The prefetch spool directory.
    public var spool: String?
    /// Decompression threads.
    public var jobs: Int = BZip2.defaultJobs

    public init(source: String, destination: String, mode: RecoveryModeDecision) {
        self.source = source
        self.destination = destination
        self.mode = mode
    }
}

/// Restores one file, printing PostgreSQL-style messages, and returns the exit status.
public func runRestore(_ request: RestoreRequest, console: Console) -> RestoreExitStatus {
    do throws(RestoreFailure) {
        return try Restorer(request: request, console: console).run()
    } catch {
        return reportRestoreFailure(error, mode: request.mode, console: console)
    }
}

/// Prints a failure (exit status as in targeted recovery), the line that explains the exit status in
/// `mode`, and its hints; returns that status.
@discardableResult
public func reportRestoreFailure(_ failure: RestoreFailure, mode: RecoveryModeDecision, console: Console) -> RestoreExitStatus {
    // In PostgreSQL's order: the error, its detail (here: what the exit status means), the hint.
    console.error(failure.message)
    let final = failure.status.inMode(mode.mode)
    switch mode.mode {
    case .standby:
        console.detail("Standby mode (\(mode.reason)): exit status 1, so that the server retries later, or streams meanwhile.")
    case .targeted:
        console.detail("Targeted recovery (\(mode.reason)): exit status \(final.rawValue), so that the server stops instead of ending recovery early.")
    }
    for hint in failure.hints { console.hint(hint) }
    return final
}

/// One run of walferry-restore. Its steps: this file (the order of the work, the identity, fetching),
/// RestoreNames.swift (SOURCE and DEST), RestoreCopy.swift (copying and verifying).
struct Restorer {
    let request: RestoreRequest
    let console: Console

    func run() throws(RestoreFailure) -> RestoreExitStatus {
        let names = try checkNames()
        let archive: ArchiveDirectory
        do {
            archive = try ArchiveDirectory(path: names.archivePath)
        } catch {
            throw RestoreFailure(.failure, "could not open archive directory \"\(names.archivePath)\": \(error)",
                                 hint: error == .noSuchFileOrDirectory || error == .notDirectory
                                    ? "Is the archive file system mounted? SOURCE is the archive directory followed by %f: walferry-restore /mnt/archive/%f %p"
                                    : nil)
        }
        let identity = try readArchiveIdentity(archive)
        let owner = try checkDataDirectory(identity, archive: archive)

        let destination = splitPath(request.destination)
        let destinationDirectory: DirectoryHandle
        do {
            destinationDirectory = try DirectoryHandle(path: FilePath(destination.directory))
        } catch {
            throw RestoreFailure(.failure, "could not open directory \"\(destination.directory)\": \(error)",
                                 hint: "DEST is %p, relative to the data directory: walferry-restore /mnt/archive/%f %p")
        }
        let target = DeliveryTarget(directory: destinationDirectory, name: destination.name, path: request.destination)

        // Prefetching: only for segments that the startup process asks for (never for pg_rewind, whose
        // %p is the final name, nor for history files).
        let spool = identity == nil ? nil : prefetchSpool(for: names.wanted, target: target)
        let archiveAbsolute = absolutePath(names.archivePath)
        let preferCompressed = names.candidates.first?.hasSuffix(".bz2") ?? false
        if let spool, let identity,
           spool.take(names.wanted, identity: identity, archive: archiveAbsolute, target: target, console: console) == .delivered {
            spool.startWorker(after: names.wanted, request: request, archive: archiveAbsolute, preferCompressed: preferCompressed, console: console)
            return .success
        }
        for candidate in names.candidates {
            if try fetch(candidate, from: archive, as: names.wanted, owner: owner, to: target) {
                spool?.startWorker(after: names.wanted, request: request, archive: archiveAbsolute, preferCompressed: preferCompressed, console: console)
                return .success
            }
        }
        if request.partial && names.wanted.kind == .segment {
            let partialName = WALFileName(timeline: names.wanted.timeline, log: names.wanted.log, segment: names.wanted.segment, kind: .partial)
            for candidate in ArchiveDirectory.candidates(for: partialName.description, compressedFirst: false) {
                if try fetch(candidate, from: archive, as: partialName, owner: owner, to: target) {
                    console.info("restored \"\(names.wanted)\" from \"\(names.archivePath)/\(candidate)\"")
                    return .success
                }
            }
        }
        // A confirmed miss. History files are asked for at every start and every few seconds on a
        // standby, and usually do not exist: no line for them. A missing segment is worth one line:
        // in targeted recovery it is where recovery ends.
        if names.wanted.kind != .timelineHistory {
            console.info("WAL file \"\(names.wanted)\" not found in archive \"\(names.archivePath)\"")
        }
        return .notAvailable
    }

    // MARK: - Names

    // MARK: - Identity

    /// The archive's identity record; nil for an archive that walferry-archive did not write (no
    /// record, but WAL files: a `cp` archive taken over, or one copied by other means). A directory
    /// with neither is refused: that is what an unmounted share looks like.
    func readArchiveIdentity(_ archive: ArchiveDirectory) throws(RestoreFailure) -> ArchiveIdentity? {
        do throws(ArchiveDirectory.IdentityError) {
            return try archive.readIdentity()
        } catch {
            switch error {
            case .missing:
                let holdsWAL: Bool
                do {
                    holdsWAL = try archive.holdsWALFiles()
                } catch {
                    throw RestoreFailure(.failure, "could not read archive directory \"\(archive.path)\": \(error)")
                }
                if holdsWAL { return nil }
                throw RestoreFailure(.identity,
                                     "archive \"\(archive.path)\" has no identity record \"\(ArchiveIdentity.fileName)\"",
                                     hint: "Is the archive file system mounted? walferry-archive writes the record with the first segment it archives.")
            case .invalid:
                throw invalidIdentityRecord(archive, status: RestoreExitStatus.identity)
            case .io(let step, let errno):
                throw RestoreFailure(.failure, "could not \(step) file \"\(archive.identityPath)\": \(errno)")
            }
        }
    }

    /// The data directory the file is restored for, when there is one: the working directory when the
    /// server calls (%p is its RECOVERYXLOG or RECOVERYHISTORY), or the one %p lies in when pg_rewind
    /// calls (`<data directory>/pg_wal/%f`, from any working directory).
    func knownDataDirectory() -> DataDirectory? {
        let destination = splitPath(request.destination)
        if serverDestinationNames.contains(destination.name) {
            return DataDirectory.working.isDataDirectory ? .working : nil
        }
        let walDirectory = splitPath(destination.directory)
        guard walDirectory.name == "pg_wal" else { return nil }
        let dataDirectory = DataDirectory(path: FilePath(walDirectory.directory))
        return dataDirectory.isDataDirectory ? dataDirectory : nil
    }

    /// The cluster the archive's files must belong to. With an identity record, that record, which
    /// must in turn name the data directory's system identifier: restoring another cluster's WAL fails
    /// later in confusing ways ("WAL file is from different database system"). Without one, the data
    /// directory's system identifier, when a data directory is known.
    func checkDataDirectory(_ identity: ArchiveIdentity?, archive: ArchiveDirectory) throws(RestoreFailure) -> ArchiveOwner {
        // No readable pg_control (or a zero identifier): nothing to compare with.
        let own = knownDataDirectory().flatMap { try? $0.systemIdentifier() }.flatMap { $0 == 0 ? nil : $0 }
        guard let identity else { return .systemIdentifier(own) }
        if let own, own != identity.systemIdentifier {
            throw RestoreFailure(.identity,
                                 "archive \"\(archive.path)\" holds WAL of system identifier \(identity.systemIdentifier), but this data directory's is \(own)",
                                 hint: "Is restore_command pointing at another cluster's archive?")
        }
        return .identity(identity)
    }

    // MARK: - Fetching

    /// Fetches `candidate` from the archive into DEST, verified. False when it does not exist.
    func fetch(_ candidate: String, from archive: ArchiveDirectory, as wanted: WALFileName, owner: ArchiveOwner,
               to target: DeliveryTarget) throws(RestoreFailure) -> Bool {
        guard let member = try openArchiveMember(candidate, in: archive) else { return false }
        let temporary: ReplacingFile
        do {
            temporary = try ReplacingFile(in: target.directory, temporaryFor: target.name, mode: 0o666)
        } catch {
            throw publishFailure(error, target: target)
        }
        _ = try copyVerified(from: member, path: archive.path(of: candidate), compressed: candidate.hasSuffix(".bz2"),
                             to: temporary, tempPath: target.temporaryPath(temporary), wanted: wanted, owner: owner,
                             archivePath: archive.path, jobs: request.jobs, checksum: false)
        do {
            try temporary.replace(target.name, durable: false)
        } catch {
            throw publishFailure(error, target: target)
        }
        return true
    }

    func publishFailure(_ error: PublishError, target: DeliveryTarget) -> RestoreFailure {
        let tempPath = target.path(of: TemporaryFile.temporaryName(for: target.name))
        switch error {
        case .exists, .busy:
            return RestoreFailure(.failure, "another process is writing \"\(tempPath)\"",
                                  hint: "Two walferry-restore processes write the same DEST; does another server use this data directory?")
        case .failed(let step, let errno):
            if step == "rename" {
                return RestoreFailure(.failure, "could not rename file \"\(tempPath)\" to \"\(target.path)\": \(errno)")
            }
            return RestoreFailure(.failure, "could not \(step) file \"\(tempPath)\": \(errno)")
        case .directorySync(let errno):
            return RestoreFailure(.failure, "could not fsync directory \"\(target.directory.path)\": \(errno)")
        }
    }

    /// The spool, when prefetching applies to this request and the spool can be used.
    func prefetchSpool(for wanted: WALFileName, target: DeliveryTarget) -> PrefetchSpool? {
        guard request.prefetch > 0, let spoolPath = request.spool, wanted.kind == .segment, target.name == "RECOVERYXLOG" else { return nil }
        return PrefetchSpool.open(path: spoolPath, deliveringInto: target.directory, console: console)
    }
}

/// Where the file goes: DEST's directory, opened, and DEST's name in it.
struct DeliveryTarget {
    let directory: DirectoryHandle
    let name: String
    /// DEST as given, for messages.
    let path: String

    func path(of entry: String) -> String {
        directory.path == "." ? entry : "\(directory.path)/\(entry)"
    }

    func temporaryPath(_ file: ReplacingFile) -> String { path(of: file.temporaryName) }
}
