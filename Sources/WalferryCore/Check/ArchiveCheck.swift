// walferry-check's archive checks: the identity record, continuity along the timeline history, no
// timeline newer than the primary's, and with --deep every file of the range read and checked.
//
// Like WAL-G's `wal-verify integrity` and `wal-verify timeline` (a segment still `.ready` on the
// primary is "delayed", not "lost"; an archived timeline newer than the primary's is a split brain)
// and pgBackRest's `verify`, except that the archive is walferry's plain directory, read through the
// archive layer only: ArchiveDirectory for the identity record and its members, WALFileName for the
// names, WALChecks.swift for the segment, history and identity rules that walferry-restore applies,
// and the shared bzip2 decoder. Nothing here writes to the archive.

import Glibc

/// The WAL names in an archive directory (either form), read once.
public struct ArchiveListing: Sendable {
    /// Segment numbers need the segment size; the names are kept as parsed.
    public var names: [WALFileName] = []

    public init(names: [WALFileName]) { self.names = names }

    /// Reads the directory: every entry with a WAL name (plain or .bz2). Other entries are ignored.
    public init(reading archive: ArchiveDirectory) throws(Errno) {
        let listing = try Directory(path: FilePath(archive.path))
        var names: [WALFileName] = []
        do throws(DirectoryReadError<Never>) {
            try listing.forEachEntry { entry in
                guard let name = WALFileName(bytes: entry.name) else { return }
                if name.compression == nil || name.compression == .bzip2 { names.append(name) }
            }
        } catch {
            switch error {
            case .read(let errno): throw errno
            }
        }
        self.names = names
    }

    /// The segments (forms merged) by timeline and number; the value says which forms are there.
    public func segments(segmentSize: WALSegmentSize) -> [UInt32: [UInt64: Forms]] {
        var result: [UInt32: [UInt64: Forms]] = [:]
        for name in names where name.kind == .segment {
            guard let number = name.segmentNumber(segmentSize: segmentSize) else { continue }
            result[name.timeline, default: [:]][number, default: []].insert(name.compression == nil ? .plain : .bzip2)
        }
        return result
    }

    /// The timelines that have a history file, with its forms.
    public var histories: [UInt32: Forms] {
        var result: [UInt32: Forms] = [:]
        for name in names where name.kind == .timelineHistory {
            result[name.timeline, default: []].insert(name.compression == nil ? .plain : .bzip2)
        }
        return result
    }

    /// The newest timeline named by any segment or history file.
    public var newestTimeline: UInt32? {
        names.filter { $0.kind == .segment || $0.kind == .timelineHistory || $0.kind == .partial }.map(\.timeline).max()
    }

    /// The forms a file is archived in.
    public struct Forms: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let plain = Forms(rawValue: 1)
        public static let bzip2 = Forms(rawValue: 2)

        /// The file names of `name` (uncompressed) in these forms.
        public func fileNames(_ name: WALFileName) -> [String] {
            var out: [String] = []
            if contains(.plain) { out.append(name.description) }
            if contains(.bzip2) { out.append(name.compressed(.bzip2).description) }
            return out
        }
    }
}

/// One --deep thread's decoder: libbz2's stream decoder and its memory, and an output buffer one byte
/// larger than a segment, reused from file to file. A .bz2 segment is decoded on the calling thread
/// in one pass (decodeCompleteStreams, the parallel engine's own per-piece decoder), without the
/// engine's threads and piece splitting: --deep already runs one file per CPU.
final class SegmentDecoder {
    let memory = BZ2Memory()
    let output: UnsafeMutableRawBufferPointer

    init(segmentSize: WALSegmentSize) {
        output = .allocate(byteCount: Int(segmentSize.bytes) + 1, alignment: 16)
    }

    deinit { output.deallocate() }

    /// The decompressed bytes, or nil when the one-pass decoding fails (damaged, truncated, larger
    /// than a segment): the caller then decodes again through BZip2.decompress, which says why.
    func decode(_ input: [UInt8]) -> [UInt8]? {
        guard let decoded = input.withUnsafeBytes({ decodeCompleteStreams($0, into: output, memory: memory) }) else { return nil }
        return Array(UnsafeRawBufferPointer(rebasing: output[..<decoded.produced]))
    }
}

/// Reads an archived file whole (decompressing a .bz2 one, through `decoder` when given): its bytes,
/// or why not.
func readArchivedFile(_ fileName: String, in archive: ArchiveDirectory, limit: UInt64 = 2 << 30,
                      decoder: SegmentDecoder? = nil) -> Result<[UInt8], ArchivedFileProblem> {
    let member: ArchiveDirectory.Member?
    do {
        member = try archive.openMember(fileName)
    } catch {
        switch error {
        case .open(let errno): return .failure(.unreadable("could not open file \"\(archive.path(of: fileName))\": \(errno)"))
        case .stat(let errno): return .failure(.unreadable("could not stat file \"\(archive.path(of: fileName))\": \(errno)"))
        case .notRegular: return .failure(.invalid("archive file \"\(archive.path(of: fileName))\" is not a regular file"))
        }
    }
    guard let member else { return .failure(.unreadable("could not open file \"\(archive.path(of: fileName))\": \(Errno.noSuchFileOrDirectory)")) }
    guard member.size <= limit else { return .failure(.invalid("archive file \"\(archive.path(of: fileName))\" is \(member.size) bytes, too large")) }
    let bytes: [UInt8]
    do {
        bytes = try readAll(member.fd, limit: Int(member.size) + 1)
    } catch {
        return .failure(.unreadable("could not read file \"\(archive.path(of: fileName))\": \(error)"))
    }
    guard fileName.hasSuffix(".bz2") else { return .success(bytes) }
    if let decoder, let decoded = decoder.decode(bytes) { return .success(decoded) }
    do {
        return .success(try BZip2.decompress(bytes, jobs: 1))
    } catch {
        return .failure(.invalid("could not decompress file \"\(archive.path(of: fileName))\": \(error)"))
    }
}

/// Why an archived file failed a check.
public enum ArchivedFileProblem: Error, Sendable, Equatable {
    /// It could not be opened or read: an I/O problem.
    case unreadable(String)
    /// It was read and is damaged, foreign or malformed.
    case invalid(String)

    public var message: String {
        switch self {
        case .unreadable(let text), .invalid(let text): text
        }
    }
}

/// The timelines a server on `target` passes through, oldest first, each with the first segment
/// number it is read from: the history's parents begin where their parent ended; the segment holding a
/// switchpoint is read from the newer timeline, as the server's XLogFileReadAnyTLI does.
public func timelinePath(target: UInt32, history: [TimelineHistoryEntry], segmentSize: WALSegmentSize) -> [(timeline: UInt32, firstSegment: UInt64)] {
    var path: [(UInt32, UInt64)] = []
    var begin: UInt64 = 0
    for entry in history {
        path.append((entry.parent, begin))
        begin = entry.switchpoint / UInt64(segmentSize.bytes)
    }
    path.append((target, begin))
    return path
}

/// What the continuity check found.
public struct ContinuityOutcome: Sendable, Equatable {
    /// The first and last segment numbers checked (nil when the archive holds no segment).
    public var first: UInt64?
    public var last: UInt64?
    /// The segments expected, by name, in range order, with the forms found (empty: missing).
    public var expected: [(name: WALFileName, forms: ArchiveListing.Forms)] = []
    /// Missing segments that the primary still has as `.ready`: not archived yet.
    public var delayed: [String] = []
    /// Missing segments the primary does not have ready: lost.
    public var lost: [String] = []

    public static func == (a: ContinuityOutcome, b: ContinuityOutcome) -> Bool {
        a.first == b.first && a.last == b.last && a.delayed == b.delayed && a.lost == b.lost
            && a.expected.map(\.name) == b.expected.map(\.name) && a.expected.map(\.forms) == b.expected.map(\.forms)
    }
}

/// Every segment from `start` (a segment number; nil: the oldest on the path) to the newest archived
/// segment of the path's last timeline (or `archivedThrough`, the last segment the primary reports
/// archived, when that is newer: a segment removed from the end of the archive is lost too) must be
/// in the archive on the timeline the path reads it from. `ready` holds the names the primary still
/// has as `.ready`.
public func checkContinuity(segments: [UInt32: [UInt64: ArchiveListing.Forms]], path: [(timeline: UInt32, firstSegment: UInt64)],
                            start: UInt64?, archivedThrough: UInt64? = nil, ready: Set<String>, segmentSize: WALSegmentSize) -> ContinuityOutcome {
    var outcome = ContinuityOutcome()
    guard let target = path.last?.timeline else { return outcome }
    // The newest segment: on the target timeline, or on the newest timeline of the path that has one.
    var last: UInt64?
    for step in path.reversed() {
        if let newest = segments[step.timeline]?.keys.filter({ $0 >= step.firstSegment }).max() {
            last = newest
            break
        }
    }
    _ = target
    if let archivedThrough, archivedThrough > (last ?? 0) { last = archivedThrough }
    guard let last else { return outcome }
    var first = start
    if first == nil {
        for step in path {
            if let oldest = segments[step.timeline]?.keys.filter({ $0 >= step.firstSegment }).min() {
                first = oldest
                break
            }
        }
    }
    guard let first, first <= last else {
        outcome.first = start
        outcome.last = last
        return outcome
    }
    outcome.first = first
    outcome.last = last
    outcome.expected.reserveCapacity(Int(min(last - first + 1, 1 << 24)))
    var stepIndex = 0
    for number in first...last {
        while stepIndex + 1 < path.count && path[stepIndex + 1].firstSegment <= number { stepIndex += 1 }
        let timeline = path[stepIndex].timeline
        let name = WALFileName(timeline: timeline, segmentNumber: number, segmentSize: segmentSize)
        let forms = segments[timeline]?[number] ?? []
        outcome.expected.append((name, forms))
        if forms.isEmpty {
            let text = name.description
            if ready.contains(text) { outcome.delayed.append(text) } else { outcome.lost.append(text) }
        }
    }
    return outcome
}

/// "000000010000000000000005, 000000010000000000000006 and 3 more"
func nameList(_ names: [String], limit: Int = 3) -> String {
    let shown = names.prefix(limit).joined(separator: ", ")
    return names.count > limit ? shown + " and \(names.count - limit) more" : shown
}

// MARK: - The archive checks

/// What the archive checks know of the primary, when -d was given and it answered.
public struct PrimaryFacts: Sendable {
    public var systemIdentifier: UInt64
    public var timeline: UInt32
    public var segmentSize: WALSegmentSize
    /// The names still `.ready` in pg_wal/archive_status, when they could be read.
    public var ready: Set<String>?
    /// pg_stat_archiver's last_archived_wal.
    public var lastArchivedWAL: String?

    public init(systemIdentifier: UInt64, timeline: UInt32, segmentSize: WALSegmentSize, ready: Set<String>?) {
        self.systemIdentifier = systemIdentifier
        self.timeline = timeline
        self.segmentSize = segmentSize
        self.ready = ready
    }
}

/// What the archive checks were asked.
public struct ArchiveCheckRequest: Sendable {
    public var path: String
    public var primary: PrimaryFacts?
    /// --from NAME: the first segment to check.
    public var from: WALFileName?
    /// The first segment the oldest kept backup needs (from -B), when known.
    public var oldestBackupStart: WALFileName?
    public var deep = false
    public var jobs = onlineCPUCount
    /// walferry-cleanup's --reader-expiry, in seconds: a reader silent for half of it is stale.
    public var readerExpiry = defaultReaderExpiry

    public init(path: String) { self.path = path }
}

/// The archive's checks, in order: archive.identity, archive.continuity, archive.timelines,
/// archive.deep, archive.readers. `listing` is what was read, for the backup checks.
public func runArchiveChecks(_ request: ArchiveCheckRequest) -> (checks: [CheckResult], listing: ArchiveListing?, identity: ArchiveIdentity?) {
    let labels = [("archive", request.path)]
    func result(_ name: String, _ status: CheckStatus, _ message: String, hints: [String] = [], figures: [CheckFigure] = []) -> CheckResult {
        CheckResult(name, status, message, hints: hints, figures: figures, labels: labels)
    }
    let names = ["archive.identity", "archive.continuity", "archive.timelines", "archive.deep"]
    let archive: ArchiveDirectory
    let listing: ArchiveListing
    do {
        archive = try ArchiveDirectory(path: request.path)
        listing = try ArchiveListing(reading: archive)
    } catch {
        var checks = [result("archive.identity", .critical, "could not read archive directory \"\(request.path)\": \(error)",
                             hints: ["Is the archive's share mounted, and readable by this user?"])]
        checks += (names.dropFirst() + ["archive.readers"]).map { result($0, .skipped, "the archive directory could not be read") }
        return (checks, nil, nil)
    }
    var checks: [CheckResult] = []

    // The identity record.
    var identity: ArchiveIdentity?
    do {
        let record = try archive.readIdentity()
        identity = record
        if let primary = request.primary, primary.systemIdentifier != record.systemIdentifier {
            checks.append(result("archive.identity", .critical,
                                 "archive \"\(request.path)\" belongs to another cluster (\(record)), not to the primary (system identifier \(primary.systemIdentifier))",
                                 hints: ["Is -A (or archive_command) pointing at another cluster's archive?"]))
        } else {
            checks.append(result("archive.identity", .ok, record.description))
        }
    } catch {
        switch error {
        case .missing:
            let holdsWAL = !listing.names.isEmpty
            checks.append(result("archive.identity", holdsWAL ? .warning : .critical,
                                 holdsWAL ? "no identity record \"\(archive.identityPath)\" in an archive that holds WAL"
                                          : "no identity record \"\(archive.identityPath)\" and no WAL: nothing was ever archived here",
                                 hints: holdsWAL ? ["walferry-archive writes it with the first segment it archives; was this archive filled by another tool?"]
                                                 : ["Is the archive's share mounted? Is archive_command set, and does it name this directory?"]))
        case .invalid:
            checks.append(result("archive.identity", .critical, "invalid archive identity record \"\(archive.identityPath)\"",
                                 hints: ["It is written by walferry-archive; if it was edited by hand, restore it from a copy."]))
        case .io(let step, let errno):
            checks.append(result("archive.identity", .critical, "could not \(step) file \"\(archive.identityPath)\": \(errno)"))
        }
    }
    let segmentSize = identity?.segmentSize ?? request.primary?.segmentSize ?? .default

    // Continuity along the newest timeline's history.
    let segments = listing.segments(segmentSize: segmentSize)
    let target = [listing.newestTimeline, request.primary?.timeline].compactMap { $0 }.max() ?? 1
    var history: [TimelineHistoryEntry] = []
    var historyProblem: String?
    if target > 1 {
        let forms = listing.histories[target] ?? []
        if let fileName = forms.fileNames(.timelineHistory(target)).first {
            switch readArchivedFile(fileName, in: archive) {
            case .success(let bytes):
                switch parseTimelineHistory(bytes, timeline: target) {
                case .success(let entries): history = entries
                case .failure(let problem): historyProblem = "invalid timeline history file \"\(archive.path(of: fileName))\": \(problem.reason)"
                }
            case .failure(let problem): historyProblem = problem.message
            }
        } else {
            historyProblem = "timeline history file \"\(archive.path(of: WALFileName.timelineHistory(target).description))\" is missing"
        }
    }
    let path = timelinePath(target: target, history: history, segmentSize: segmentSize)
    let start = (request.from ?? request.oldestBackupStart)?.segmentNumber(segmentSize: segmentSize)
    let ready = request.primary?.ready ?? []
    // The primary's last archived segment, when it is on the path's last timeline. A backup history
    // file names the segment its backup started in, which the server may archive just after it: that
    // segment is then still .ready (delayed, not lost); without the .ready list, the one before it.
    var archivedThrough: UInt64?
    if let last = request.primary?.lastArchivedWAL.flatMap({ WALFileName($0) }), last.timeline == path.last?.timeline,
       let number = last.segmentNumber(segmentSize: segmentSize) {
        switch last.kind {
        case .segment: archivedThrough = number
        case .backupHistory: archivedThrough = request.primary?.ready != nil ? number : (number > 0 ? number - 1 : nil)
        case .partial, .timelineHistory: break
        }
    }
    let continuity = checkContinuity(segments: segments, path: path, start: start, archivedThrough: archivedThrough, ready: ready,
                                     segmentSize: segmentSize)
    let checked = continuity.expected.count
    let figures = [CheckFigure("archive_segments_checked", Double(checked), .count),
                   CheckFigure("archive_missing_segments", Double(continuity.lost.count), .count, critical: 0),
                   CheckFigure("archive_delayed_segments", Double(continuity.delayed.count), .count, warning: 0)]
    let from = request.from != nil ? " (from --from)" : request.oldestBackupStart != nil ? " (from the oldest backup's start)" : ""
    if let historyProblem {
        checks.append(result("archive.continuity", .critical, historyProblem, hints: ["The timeline history files are archived by the server at each promotion; without them a recovery cannot follow the switch."], figures: figures))
    } else if let first = continuity.first, let last = continuity.last, checked == 0, first > last {
        let firstName = WALFileName(timeline: path.last?.timeline ?? 1, segmentNumber: first, segmentSize: segmentSize)
        checks.append(result("archive.continuity", .critical,
                             "no segment archived since \(firstName)\(from); the newest is \(WALFileName(timeline: path.last?.timeline ?? 1, segmentNumber: last, segmentSize: segmentSize))",
                             hints: ["Is archiving failing? See primary.archiver."], figures: figures))
    } else if checked == 0 {
        checks.append(result("archive.continuity", .critical, "archive \"\(request.path)\" holds no WAL segment",
                             hints: ["Is archive_command set, and does it name this directory?"], figures: figures))
    } else if !continuity.lost.isEmpty {
        checks.append(result("archive.continuity", .critical,
                             "\(continuity.lost.count) of \(checked) segments missing: \(nameList(continuity.lost))",
                             hints: ["A recovery through these segments is impossible: take a new base backup now, and find what removed them."],
                             figures: figures))
    } else if !continuity.delayed.isEmpty {
        checks.append(result("archive.continuity", .warning,
                             "\(continuity.delayed.count) of \(checked) segments not archived yet, still .ready on the primary: \(nameList(continuity.delayed))",
                             hints: ["The archiver is behind; see primary.archiver and primary.ready."], figures: figures))
    } else if let first = continuity.expected.first, let last = continuity.expected.last {
        let timelines = path.count > 1 ? " across timelines \(path.map { String($0.timeline) }.joined(separator: ", "))" : ""
        checks.append(result("archive.continuity", .ok, "\(checked) segments, \(first.name) to \(last.name)\(timelines), none missing\(from)",
                             figures: figures))
    }

    // No timeline newer than the primary's.
    let newest = listing.newestTimeline
    if let primary = request.primary {
        let figure = [CheckFigure("archive_newest_timeline", Double(newest ?? 0), .number)]
        if let newest, newest > primary.timeline {
            checks.append(result("archive.timelines", .critical,
                                 "archive holds timeline \(newest), newer than the primary's timeline \(primary.timeline): another server was promoted and archives here (split brain)",
                                 hints: ["Find the server that archives timeline \(newest) and stop it, or point it at its own archive."], figures: figure))
        } else {
            checks.append(result("archive.timelines", .ok, "newest archived timeline \(newest.map(String.init) ?? "none"), primary on \(primary.timeline)", figures: figure))
        }
    } else {
        checks.append(result("archive.timelines", .skipped, "needs the primary (-d)"))
    }

    // --deep: every file of the range read and checked.
    if request.deep {
        let owner: ArchiveOwner = identity.map { .identity($0) } ?? .systemIdentifier(request.primary?.systemIdentifier)
        var files: [(WALFileName, String)] = []
        for (name, forms) in continuity.expected {
            for fileName in forms.fileNames(name) { files.append((name, fileName)) }
        }
        for step in path where step.timeline > 1 {
            let name = WALFileName.timelineHistory(step.timeline)
            for fileName in (listing.histories[step.timeline] ?? []).fileNames(name) { files.append((name, fileName)) }
        }
        let problems = deepCheck(files, in: archive, owner: owner, segmentSize: segmentSize, jobs: request.jobs)
        let figures = [CheckFigure("archive_files_verified", Double(files.count - problems.count), .count),
                       CheckFigure("archive_damaged_files", Double(problems.count), .count, critical: 0)]
        if problems.isEmpty {
            checks.append(result("archive.deep", .ok, "\(files.count) files read and verified", figures: figures))
        } else {
            checks.append(result("archive.deep", .critical, "\(problems.count) of \(files.count) files damaged: \(problems[0].message)\(problems.count > 1 ? " (and \(problems.count - 1) more)" : "")",
                                 hints: ["A recovery stops at a damaged file: restore it from another copy of the archive, or take a new base backup now."],
                                 figures: figures))
        }
    } else {
        checks.append(result("archive.deep", .skipped, "needs --deep"))
    }
    checks.append(readersCheck(archive, identity: identity, expiry: request.readerExpiry, labels: labels))
    return (checks, listing, identity)
}

/// archive.readers: walferry-cleanup's registered readers (Cleanup/ArchiveReaders.swift), judged
/// against the expiry as the cleanups judge them: a reader silent for half of it is a warning (its
/// standby is stopped or its cleanup fails, and it holds WAL back); one past it is critical (the
/// cleanups no longer keep its WAL, so its standby may not be able to catch up). No readers is ok.
/// The records are read without the readers' lock: each is replaced atomically.
func readersCheck(_ archive: ArchiveDirectory, identity: ArchiveIdentity?, expiry: Int64, labels: [(String, String)]) -> CheckResult {
    func result(_ status: CheckStatus, _ message: String, hints: [String] = [], figures: [CheckFigure] = []) -> CheckResult {
        CheckResult("archive.readers", status, message, hints: hints, figures: figures, labels: labels)
    }
    let readers: [ArchiveReader]
    do throws(CleanupFailure) {
        guard let registry = try ArchiveReaders.open(in: archive) else {
            return result(.ok, "no registered readers", figures: [CheckFigure("archive_readers", 0, .count)])
        }
        guard let identity else {
            return result(.critical, "readers are registered in \"\(registry.path)\" but the archive has no valid identity record",
                          hints: ["Every cleanup of this archive fails and removes nothing until the record is back."])
        }
        readers = try registry.records(identity: identity)
    } catch {
        return result(.critical, error.message,
                      hints: ["Every cleanup of this archive fails and removes nothing until this is mended: forget that reader (walferry-cleanup --forget-reader) and register it again."])
    }
    let now = wallClockSeconds()
    let stale = readers.filter { ReaderState(age: now - $0.reportedAt, expiry: expiry) == .stale }
    let expired = readers.filter { ReaderState(age: now - $0.reportedAt, expiry: expiry) == .expired }
    let oldest = readers.map { now - $0.reportedAt }.max() ?? 0
    let figures = [CheckFigure("archive_readers", Double(readers.count), .count),
                   CheckFigure("archive_readers_stale", Double(stale.count), .count, warning: 0),
                   CheckFigure("archive_readers_expired", Double(expired.count), .count, critical: 0),
                   CheckFigure("archive_reader_silence", Double(oldest), .seconds,
                               warning: Double(expiry / 2), critical: Double(expiry))]
    func describe(_ list: [ArchiveReader]) -> String {
        list.map { "\"\($0.name)\" (\(formatAge(now - $0.reportedAt)), at \($0.oldestKeptWALFile))" }.joined(separator: ", ")
    }
    if !expired.isEmpty {
        return result(.critical, "\(expired.count) of \(readers.count) registered readers past the expiry of \(formatAge(expiry)), their WAL no longer kept: \(describe(expired))",
                      hints: ["Its standby may no longer catch up from the archive: check it, rebuild it from a new backup, or forget it (walferry-cleanup --forget-reader NAME \(archive.path))."],
                      figures: figures)
    }
    if !stale.isEmpty {
        return result(.warning, "\(stale.count) of \(readers.count) registered readers silent for more than half the expiry of \(formatAge(expiry)): \(describe(stale))",
                      hints: ["A stopped standby, or one whose archive_cleanup_command fails: it holds WAL back until the expiry."],
                      figures: figures)
    }
    return result(.ok, "registered readers: \(readers.count), all reporting (the longest silent for \(formatAge(oldest)))", figures: figures)
}

/// Reads and checks `files` (name, file name) on `jobs` threads, each file whole: decompressed with
/// its stream CRCs checked, then a segment against its name and `owner` (WALChecks.swift), a history
/// file's syntax. Returns the problems, in file order.
func deepCheck(_ files: [(WALFileName, String)], in archive: ArchiveDirectory, owner: ArchiveOwner, segmentSize: WALSegmentSize,
               jobs: Int) -> [ArchivedFileProblem] {
    final class Shared: @unchecked Sendable {
        // @unchecked: `next` and `problems` are used with `lock` held only; the rest is immutable.
        let lock = ConditionLock()
        var next = 0
        var problems: [(Int, ArchivedFileProblem)] = []
        let files: [(WALFileName, String)]
        let archive: ArchiveDirectory
        let owner: ArchiveOwner
        init(_ files: [(WALFileName, String)], _ archive: ArchiveDirectory, _ owner: ArchiveOwner) {
            self.files = files
            self.archive = archive
            self.owner = owner
        }
    }
    let shared = Shared(files, archive, owner)
    let work: @Sendable () -> Void = {
        let decoder = SegmentDecoder(segmentSize: segmentSize)
        while true {
            let index: Int = shared.lock.withLock {
                defer { shared.next += 1 }
                return shared.next
            }
            guard index < shared.files.count else { return }
            let (name, fileName) = shared.files[index]
            if let problem = checkArchivedFile(name, fileName, in: shared.archive, owner: shared.owner, decoder: decoder) {
                shared.lock.withLock { shared.problems.append((index, problem)) }
            }
        }
    }
    var threads: [JoinableThread] = []
    for _ in 1..<max(1, min(jobs, files.count)) {
        guard let thread = try? JoinableThread.start(work) else { break }
        threads.append(thread)
    }
    work()
    for thread in threads { thread.join() }
    return shared.problems.sorted { $0.0 < $1.0 }.map(\.1)
}

/// One file of deepCheck.
func checkArchivedFile(_ name: WALFileName, _ fileName: String, in archive: ArchiveDirectory, owner: ArchiveOwner,
                       decoder: SegmentDecoder? = nil) -> ArchivedFileProblem? {
    let bytes: [UInt8]
    switch readArchivedFile(fileName, in: archive, decoder: name.holdsWAL ? decoder : nil) {
    case .success(let read): bytes = read
    case .failure(let problem): return problem
    }
    let path = archive.path(of: fileName)
    if name.kind == .timelineHistory {
        return timelineHistoryProblem(bytes, timeline: name.timeline).map { .invalid("invalid timeline history file \"\(path)\": \($0)") }
    }
    do throws(ArchivedSegmentProblem) {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(ArchivedSegmentProblem) in
                try checkArchivedSegment(name, contents: buffer, size: UInt64(bytes.count), belongsTo: owner)
            }
        }.get()
        return nil
    } catch {
        switch error {
        case .invalid(let problem): return .invalid("archive file \"\(path)\" is not a valid WAL segment \"\(name)\": \(problem)")
        case .foreign(let found): return .invalid("archive file \"\(path)\" (\(found)) does not belong in this archive")
        }
    }
}
