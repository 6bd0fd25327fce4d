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
public enum RestoreExitStatus: Int32, Sendable {
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

/// A failure: the exit status (in targeted recovery), the message, and an optional hint.
struct RestoreFailure: Error {
    let status: RestoreExitStatus
    let message: String
    var hint: String?
}

/// Restores one file, printing PostgreSQL-style messages, and returns the exit status.
public func runRestore(_ request: RestoreRequest, console: Console) -> RestoreExitStatus {
    do throws(RestoreFailure) {
        return try Restorer(request: request, console: console).run()
    } catch {
        return reportRestoreFailure(status: error.status, message: error.message, hint: error.hint,
                                    mode: request.mode, console: console)
    }
}

/// Prints a failure, its hint, and the line that explains the exit status in `mode`; returns that status.
@discardableResult
public func reportRestoreFailure(status: RestoreExitStatus, message: String, hint: String?,
                                 mode: RecoveryModeDecision, console: Console) -> RestoreExitStatus {
    // In PostgreSQL's order: the error, its detail (here: what the exit status means), the hint.
    console.error(message)
    let final = status.inMode(mode.mode)
    switch mode.mode {
    case .standby:
        console.detail("Standby mode (\(mode.reason)): exit status 1, so that the server retries later, or streams meanwhile.")
    case .targeted:
        console.detail("Targeted recovery (\(mode.reason)): exit status \(final.rawValue), so that the server stops instead of ending recovery early.")
    }
    if let hint { console.hint(hint) }
    return final
}


private let chunkSize = 1 << 20

/// The file names the server gives as the last component of `%p`.
let serverDestinationNames: Set<String> = ["RECOVERYXLOG", "RECOVERYHISTORY"]

private struct Restorer {
    let request: RestoreRequest
    let console: Console

    func run() throws(RestoreFailure) -> RestoreExitStatus {
        let names = try checkNames()
        let archive: DirectoryHandle
        do {
            archive = try DirectoryHandle(path: names.archivePath)
        } catch {
            throw RestoreFailure(status: .failure, message: "could not open archive directory \"\(names.archivePath)\": \(error)",
                                 hint: error == .noSuchFileOrDirectory || error == .notDirectory
                                    ? "Is the archive file system mounted? SOURCE is the archive directory followed by %f: walferry-restore /mnt/archive/%f %p"
                                    : nil)
        }
        let identity = try readArchiveIdentity(archive)
        try checkDataDirectory(identity, archive: archive)

        let destination = splitPath(request.destination)
        let destinationDirectory: DirectoryHandle
        do {
            destinationDirectory = try DirectoryHandle(path: destination.directory)
        } catch {
            throw RestoreFailure(status: .failure, message: "could not open directory \"\(destination.directory)\": \(error)",
                                 hint: "DEST is %p, relative to the data directory: walferry-restore /mnt/archive/%f %p")
        }
        let target = DeliveryTarget(directory: destinationDirectory, name: destination.name, path: request.destination)

        // Prefetching: only for segments that the startup process asks for (never for pg_rewind, whose
        // %p is the final name, nor for history files).
        let spool = prefetchSpool(for: names.wanted, target: target)
        let archiveAbsolute = absolutePath(names.archivePath)
        let preferCompressed = names.candidates.first?.hasSuffix(".bz2") ?? false
        if let spool, spool.take(names.wanted, identity: identity, archive: archiveAbsolute, target: target, console: console) == .delivered {
            spool.startWorker(after: names.wanted, request: request, archive: archiveAbsolute, preferCompressed: preferCompressed, console: console)
            return .success
        }
        for candidate in names.candidates {
            if try fetch(candidate, from: archive, as: names.wanted, identity: identity, to: target) {
                spool?.startWorker(after: names.wanted, request: request, archive: archiveAbsolute, preferCompressed: preferCompressed, console: console)
                return .success
            }
        }
        if request.partial && names.wanted.kind == .segment {
            let partialName = WALFileName(timeline: names.wanted.timeline, log: names.wanted.log, segment: names.wanted.segment, kind: .partial)
            for candidate in [partialName.description, partialName.description + ".bz2"] {
                if try fetch(candidate, from: archive, as: partialName, identity: identity, to: target) {
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

    struct Names {
        let archivePath: String
        /// The requested file, without compression suffix.
        let wanted: WALFileName
        /// The archive names to look for, in order.
        let candidates: [String]
    }

    func checkNames() throws(RestoreFailure) -> Names {
        let (archivePath, sourceName) = splitPath(request.source)
        guard let parsed = WALFileName(sourceName), parsed.compression == nil || parsed.compression == .bzip2 else {
            throw RestoreFailure(status: .usage, message: "\"\(request.source)\" is not the archive path of a WAL file",
                                 hint: sourceHint(sourceName))
        }
        let wanted = parsed.uncompressed
        let plain = wanted.description, compressed = plain + ".bz2"

        let destinationName = splitPath(request.destination).name
        let usageHint = "DEST is %p: restore_command = 'walferry-restore /mnt/archive/%f %p'"
        if destinationName.isEmpty || (try? fileType(atPath: request.destination)) == .directory {
            throw RestoreFailure(status: .usage, message: "\"\(request.destination)\" is a directory", hint: usageHint)
        }
        guard serverDestinationNames.contains(destinationName) || destinationName == plain else {
            var hint = usageHint
            if WALFileName(destinationName) != nil || destinationName.hasSuffix(".bz2") {
                hint = "DEST is named after another file than SOURCE; " + usageHint
            }
            throw RestoreFailure(status: .usage,
                                 message: "\"\(request.destination)\" is neither the server's %p (RECOVERYXLOG, RECOVERYHISTORY) nor a path ending in \"\(plain)\"",
                                 hint: hint)
        }
        // `pg_wal/%f` instead of `%p`: the server would not find the file where it looks (RECOVERYXLOG)
        // and take it for missing. pg_rewind's %p is `<data directory>/pg_wal/%f`, never this string.
        if request.destination == "pg_wal/" + plain && KnownDataDirectory.workingDirectoryIsDataDirectory {
            throw RestoreFailure(status: .usage, message: "\"\(request.destination)\" is not where the server reads the restored file",
                                 hint: "DEST is %p (pg_wal/RECOVERYXLOG), not pg_wal/%f: restore_command = 'walferry-restore /mnt/archive/%f %p'")
        }
        return Names(archivePath: archivePath, wanted: wanted,
                     candidates: parsed.compression == .bzip2 ? [compressed, plain] : [plain, compressed])
    }

    func sourceHint(_ sourceName: String) -> String {
        if serverDestinationNames.contains(sourceName) || request.source.hasPrefix("pg_wal/") || request.source.contains("/pg_wal/") {
            return "SOURCE and DEST are swapped: restore_command = 'walferry-restore /mnt/archive/%f %p'"
        }
        if sourceName.isEmpty || (try? fileType(atPath: request.source)) == .directory {
            return "SOURCE is the archive directory followed by %f: restore_command = 'walferry-restore /mnt/archive/%f %p'"
        }
        if let name = WALFileName(sourceName), let compression = name.compression {
            return "walferry-restore reads bzip2 files only, not \(compression.suffix)."
        }
        return "SOURCE is the archive path of %f: restore_command = 'walferry-restore /mnt/archive/%f %p'"
    }

    // MARK: - Identity

    func readArchiveIdentity(_ archive: DirectoryHandle) throws(RestoreFailure) -> ArchiveIdentity {
        let recordPath = "\(archive.path)/\(ArchiveIdentity.fileName)"
        do throws(ArchiveIdentityReadError) {
            return try readIdentityRecord(archive)
        } catch {
            switch error {
            case .missing:
                throw RestoreFailure(status: .identity,
                                     message: "archive \"\(archive.path)\" has no identity record \"\(ArchiveIdentity.fileName)\"",
                                     hint: "Is the archive file system mounted? walferry-archive writes the record with the first segment it archives.")
            case .invalid:
                throw RestoreFailure(status: .identity, message: "invalid archive identity record \"\(recordPath)\"",
                                     hint: "It is written by walferry-archive; if it was edited by hand, restore it from a copy.")
            case .io(let step, let errno):
                throw RestoreFailure(status: .failure, message: "could not \(step) file \"\(recordPath)\": \(errno)")
            }
        }
    }

    /// When the server calls (%p is its RECOVERYXLOG or RECOVERYHISTORY, and the working directory
    /// is the data directory), the archive must hold its cluster's WAL: restoring another cluster's
    /// WAL fails later in confusing ways ("WAL file is from different database system"). pg_rewind's
    /// working directory is anything, so its calls are not checked here.
    func checkDataDirectory(_ identity: ArchiveIdentity, archive: DirectoryHandle) throws(RestoreFailure) {
        guard serverDestinationNames.contains(splitPath(request.destination).name),
              let own = KnownDataDirectory.systemIdentifier() else { return }
        guard own == identity.systemIdentifier else {
            throw RestoreFailure(status: .identity,
                                 message: "archive \"\(archive.path)\" holds WAL of system identifier \(identity.systemIdentifier), but this data directory's is \(own)",
                                 hint: "Is restore_command pointing at another cluster's archive?")
        }
    }

    // MARK: - Fetching

    /// Fetches `candidate` from the archive into DEST, verified. False when it does not exist.
    func fetch(_ candidate: String, from archive: DirectoryHandle, as wanted: WALFileName, identity: ArchiveIdentity,
               to target: DeliveryTarget) throws(RestoreFailure) -> Bool {
        let path = "\(archive.path)/\(candidate)"
        let fd: Int32
        do {
            fd = try openArchiveFile(archive, candidate)
        } catch .noSuchFileOrDirectory {
            return false
        } catch {
            throw RestoreFailure(status: .failure, message: "could not open file \"\(path)\": \(error)",
                                 hint: error.rawValue == ELOOP ? "walferry-restore does not follow symbolic links in the archive." : nil)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw RestoreFailure(status: .failure, message: "could not stat file \"\(path)\": \(Errno.current)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw RestoreFailure(status: .invalid, message: "archive file \"\(path)\" is not a regular file")
        }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)

        let temporary: ReplacingFile
        do {
            temporary = try ReplacingFile(in: target.directory, temporaryFor: target.name, mode: 0o666)
        } catch {
            throw publishFailure(error, target: target)
        }
        let tempPath = target.temporaryPath(temporary)
        _ = try copyVerified(from: fd, path: path, compressed: candidate.hasSuffix(".bz2"), size: UInt64(info.st_size),
                                       to: temporary, tempPath: tempPath, wanted: wanted, identity: identity,
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
            return RestoreFailure(status: .failure, message: "another process is writing \"\(tempPath)\"",
                                  hint: "Two walferry-restore processes write the same DEST; does another server use this data directory?")
        case .failed(let step, let errno):
            if step == "rename" {
                return RestoreFailure(status: .failure, message: "could not rename file \"\(tempPath)\" to \"\(target.path)\": \(errno)")
            }
            return RestoreFailure(status: .failure, message: "could not \(step) file \"\(tempPath)\": \(errno)")
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

/// What a verified copy held.
struct CopiedContent {
    let size: UInt64
    let checksum: UInt32
}

/// Copies (or decompresses) the archive file open as `fd` into `temporary`, then verifies what was
/// written: a segment against its name and the archive identity, a timeline history file's syntax.
/// Shared by the foreground fetch and the prefetch worker.
/// Without `checksum` (the foreground, which needs none), a plain file is copied inside the kernel
/// (sendfile), as cp does with copy_file_range: no pass through user memory, which would make the
/// copy cost twice cp's; the returned checksum is then 0.
func copyVerified(from fd: Int32, path: String, compressed: Bool, size: UInt64, to temporary: ReplacingFile, tempPath: String,
                  wanted: WALFileName, identity: ArchiveIdentity, archivePath: String, jobs: Int,
                  checksum: Bool = true) throws(RestoreFailure) -> CopiedContent {
    var crc = CRC32C()
    var total: UInt64 = 0
    if !compressed && !checksum {
        // sendfile moves at most 0x7ffff000 bytes a call; it fails at once (EINVAL, ENOSYS) where the
        // pair of files does not support it, and the loop below then copies the rest.
        var offset = off_t(0)
        while UInt64(offset) < size {
            let sent = sendfile(temporary.fd, fd, &offset, min(Int(size - UInt64(offset)), 0x7fff_f000))
            if sent > 0 { continue }
            if sent == 0 { break }  // the file shrank: caught by the size check below
            let error = Errno.current
            if error == .interrupted { continue }
            if error.rawValue == EINVAL || error.rawValue == ENOSYS { break }
            if error.rawValue == EIO || error.rawValue == ESTALE {
                throw RestoreFailure(status: .failure, message: "could not read file \"\(path)\": \(error)")
            }
            throw RestoreFailure(status: .failure, message: "could not copy file \"\(path)\" to \"\(tempPath)\": \(error)")
        }
        total = UInt64(offset)
        if lseek(fd, offset, SEEK_SET) < 0 {
            throw RestoreFailure(status: .failure, message: "could not seek in file \"\(path)\": \(Errno.current)")
        }
    }
    if compressed {
        do {
            let result = try BZip2.decompress(from: fd, to: temporary.fd, jobs: jobs) { crc.update($0) }
            total = result.bytesOut
        } catch {
            switch error {
            case .read(let errno): throw RestoreFailure(status: .failure, message: "could not read file \"\(path)\": \(errno)")
            case .write(let errno): throw RestoreFailure(status: .failure, message: "could not write file \"\(tempPath)\": \(errno)")
            case .truncated, .trailingGarbage, .corrupt, .notBZip2:
                throw RestoreFailure(status: .invalid, message: "could not decompress file \"\(path)\": \(error)",
                                     hint: "The archived copy is damaged; restore it from another copy of the archive.")
            default: throw RestoreFailure(status: .failure, message: "could not decompress file \"\(path)\": \(error)")
            }
        }
    } else if total < size {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count: Int
            do throws(Errno) {
                count = try readFully(fd, into: buffer)
            } catch {
                throw RestoreFailure(status: .failure, message: "could not read file \"\(path)\": \(error)")
            }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            crc.update(chunk)
            do throws(Errno) {
                try temporary.write(chunk)
            } catch {
                throw RestoreFailure(status: .failure, message: "could not write file \"\(tempPath)\": \(error)")
            }
            total += UInt64(count)
            if count < chunkSize { break }
        }
    }
    if !compressed && total != size {
        throw RestoreFailure(status: .failure, message: "file \"\(path)\" changed size while it was read (\(size) bytes, then \(total))")
    }

    // Verify what was written, from the temporary file itself.
    if wanted.holdsWAL {
        var header = [UInt8](repeating: 0, count: WALLongPageHeader.size)
        let count: Int
        do throws(Errno) {
            count = try header.withUnsafeMutableBytes { buffer in Result { () throws(Errno) in try preadFully(temporary.fd, into: buffer, at: 0) } }.get()
        } catch {
            throw RestoreFailure(status: .failure, message: "could not read file \"\(tempPath)\": \(error)")
        }
        try verifySegment(name: wanted, firstBytes: header.prefix(count), size: total, identity: identity, path: path, archivePath: archivePath)
    } else if wanted.kind == .timelineHistory {
        guard total <= 16 << 20 else {
            throw RestoreFailure(status: .invalid, message: "timeline history file \"\(path)\" is \(total) bytes, too large to be one")
        }
        var bytes = [UInt8](repeating: 0, count: Int(total))
        do throws(Errno) {
            _ = try bytes.withUnsafeMutableBytes { buffer in Result { () throws(Errno) in try preadFully(temporary.fd, into: buffer, at: 0) } }.get()
        } catch {
            throw RestoreFailure(status: .failure, message: "could not read file \"\(tempPath)\": \(error)")
        }
        if let problem = timelineHistoryProblem(bytes, timeline: wanted.timeline) {
            throw RestoreFailure(status: .invalid, message: "invalid timeline history file \"\(path)\": \(problem)")
        }
    } else if total == 0 {
        throw RestoreFailure(status: .invalid, message: "archive file \"\(path)\" is empty")
    }
    return CopiedContent(size: total, checksum: crc.value)
}

/// Checks a segment's first page and size against its name, and its cluster against the archive's.
func verifySegment(name: WALFileName, firstBytes: some Collection<UInt8>, size: UInt64, identity: ArchiveIdentity,
                   path: String, archivePath: String) throws(RestoreFailure) {
    let facts: WALSegmentFacts
    do throws(WALSegmentProblem) {
        facts = try checkWALSegment(name: name, firstBytes: firstBytes, fileSize: size)
    } catch {
        throw RestoreFailure(status: .invalid, message: "archive file \"\(path)\" is not a valid WAL segment \"\(name)\": \(error)",
                             hint: "The archived copy is damaged or misnamed; restore it from another copy of the archive.")
    }
    let found = ArchiveIdentity(facts)
    guard found == identity else {
        throw RestoreFailure(status: .invalid,
                             message: "archive file \"\(path)\" (\(found)) does not belong in archive \"\(archivePath)\" (\(identity))",
                             hint: "Was it copied into the archive by hand, from another cluster?")
    }
}

/// Why `bytes` is not a timeline history file for `timeline` that the server will accept, or nil.
/// The server's rules (readTimeLineHistory): blank lines and `#` comments are skipped; every other
/// line is `parentTLI<TAB>%X/%X` and an optional reason; the parents increase and are below the
/// file's own timeline. walferry adds that the file ends with a newline, as the server writes it, so
/// that a truncated copy is caught.
func timelineHistoryProblem(_ bytes: [UInt8], timeline: UInt32) -> String? {
    guard !bytes.isEmpty else { return "file is empty" }
    guard bytes.last == UInt8(ascii: "\n") else { return "file does not end with a newline (truncated?)" }
    var last: UInt32?
    var number = 0
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
        number += 1
        let content = line.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
        if content.isEmpty || content.first == UInt8(ascii: "#") { continue }
        let fields = line.split(separator: 0x09, maxSplits: 2, omittingEmptySubsequences: false)
        guard let tliText = fields.first, let tli = UInt32(String(decoding: tliText, as: UTF8.self)) else {
            return "line \(number): expected a numeric timeline ID"
        }
        guard fields.count >= 2, parseLSN(String(decoding: fields[1], as: UTF8.self)) != nil else {
            return "line \(number): expected a write-ahead log switchpoint location"
        }
        if let last, tli <= last { return "line \(number): timeline IDs must be in increasing sequence" }
        last = tli
    }
    guard let last else { return "file lists no parent timeline" }
    guard last < timeline else { return "timeline IDs must be less than the file's own timeline \(timeline)" }
    return nil
}

// MARK: - Reading the identity record and the data directory

/// Opens a file of the archive for reading, never through a symbolic link, and without blocking on
/// a FIFO (O_NONBLOCK has no effect on reading a regular file; anything else is refused after fstat).
func openArchiveFile(_ archive: DirectoryHandle, _ name: String) throws(Errno) -> Int32 {
    try retryingOnInterrupt { openat(archive.fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
}

enum ArchiveIdentityReadError: Error {
    case missing
    case invalid
    case io(step: String, Errno)
}

/// Reads the archive's `walferry.identity`.
func readIdentityRecord(_ archive: DirectoryHandle) throws(ArchiveIdentityReadError) -> ArchiveIdentity {
    let fd: Int32
    do {
        fd = try openArchiveFile(archive, ArchiveIdentity.fileName)
    } catch .noSuchFileOrDirectory {
        throw .missing
    } catch {
        throw .io(step: "open", error)
    }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 4096)
    let count: Int
    do throws(Errno) {
        count = try bytes.withUnsafeMutableBytes { buffer in Result { () throws(Errno) in try readFully(fd, into: buffer) } }.get()
    } catch {
        throw .io(step: "read", error)
    }
    guard let identity = ArchiveIdentity(text: Array(bytes[..<count])) else { throw .invalid }
    return identity
}

/// What the working directory says when it is a PostgreSQL data directory.
enum KnownDataDirectory {
    static var workingDirectoryIsDataDirectory: Bool {
        var info = stat()
        return stat("PG_VERSION", &info) == 0 && stat("global/pg_control", &info) == 0
    }

    /// The system identifier in `global/pg_control`: ControlFileData's first field, a native-endian
    /// uint64, in every version. Nil when there is no readable pg_control.
    static func systemIdentifier() -> UInt64? {
        let fd = open("global/pg_control", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8)
        let count = bytes.withUnsafeMutableBytes { (try? preadFully(fd, into: $0, at: 0)) ?? 0 }
        guard count == 8 else { return nil }
        var value: UInt64 = 0
        for index in (0..<8).reversed() { value = value << 8 | UInt64(bytes[index]) }
        return value == 0 ? nil : value
    }
}
