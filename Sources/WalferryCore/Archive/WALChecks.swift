// The checks every tool makes on a WAL file it takes from, or puts into, the archive: a segment's
// first page and size against its name, its every page and record as the server will read them, and
// its cluster against the archive's identity; and a timeline history file's syntax as the server
// parses it.
//
// Like the checks the server makes when it reads the file (XLogReaderValidatePageHeader,
// ValidXLogRecordHeader, ValidXLogRecord, readTimeLineHistory; docs/server-rules.md §3, §6 and §7),
// made before the file is delivered, so that a damaged, truncated or foreign file is refused by
// walferry with its name, instead of being read by the server as the end of the WAL. The first page's
// rules live in WAL/WALSegmentHeader.swift, the records' in WAL/WALRecords.swift; this file adds the
// archive's identity and the history syntax, and is the one place the tools call.

/// Why an archived segment is refused.
public enum ArchivedSegmentProblem: Error, Equatable {
    /// The file is not a sound segment for its name.
    case invalid(WALSegmentProblem)
    /// A sound segment of another cluster, version or segment size than `expected`.
    case foreign(found: ArchiveIdentity)
}

/// How much of a `size`-byte segment file the checks below need in `contents`: all of it, unless it is
/// too large to be a segment at all (its first page then shows why), so that a huge file is not read.
public func segmentCheckLength(fileSize size: UInt64) -> Int {
    size <= 1 << 30 ? Int(size) : WALLongPageHeader.size
}

/// The cluster an archived segment must belong to.
public enum ArchiveOwner: Sendable, Equatable {
    /// The archive's identity record (or the server's own facts): system identifier, segment size and
    /// version must all match.
    case identity(ArchiveIdentity)
    /// An archive walferry-archive did not write (no identity record): the system identifier of the
    /// data directory the file is for, when one is known; nil to check the file against its name only.
    case systemIdentifier(UInt64?)

    func owns(_ found: ArchiveIdentity) -> Bool {
        switch self {
        case .identity(let identity): found == identity
        case .systemIdentifier(let systemIdentifier): systemIdentifier.map { $0 == found.systemIdentifier } ?? true
        }
    }
}

/// Checks a `size`-byte segment (or `.partial`) file against `name`: its size, its first page, and every
/// page and record the server will read; returns the cluster it belongs to. `contents` holds the file's
/// first segmentCheckLength(fileSize: size) bytes.
public func segmentIdentity(_ name: WALFileName, contents: UnsafeRawBufferPointer, size: UInt64) throws(WALSegmentProblem) -> ArchiveIdentity {
    let found = ArchiveIdentity(try checkWALSegment(name: name, firstBytes: contents.prefix(WALLongPageHeader.size), fileSize: size))
    try checkWALSegmentRecords(name: name, contents: contents)
    return found
}

/// Checks a segment (or `.partial`) file as segmentIdentity does, and the cluster it belongs to
/// against `owner`.
public func checkArchivedSegment(_ name: WALFileName, contents: UnsafeRawBufferPointer, size: UInt64,
                                 belongsTo owner: ArchiveOwner) throws(ArchivedSegmentProblem) {
    // The first page first: a foreign segment is named as one, whatever its records.
    let found: ArchiveIdentity
    do throws(WALSegmentProblem) {
        found = ArchiveIdentity(try checkWALSegment(name: name, firstBytes: contents.prefix(WALLongPageHeader.size), fileSize: size))
    } catch {
        throw .invalid(error)
    }
    if !owner.owns(found) { throw .foreign(found: found) }
    do throws(WALSegmentProblem) {
        try checkWALSegmentRecords(name: name, contents: contents)
    } catch {
        throw .invalid(error)
    }
}

/// One line of a timeline history file: timeline `parent` ended at `switchpoint`.
public struct TimelineHistoryEntry: Sendable, Equatable {
    public let parent: UInt32
    public let switchpoint: UInt64
}

/// Why `bytes` is not a timeline history file for `timeline` that the server will accept, or nil.
/// The server's rules (readTimeLineHistory): blank lines and `#` comments are skipped; every other
/// line is `parentTLI<TAB>%X/%X` and an optional reason; the parents increase and are below the
/// file's own timeline. walferry adds that the file ends with a newline, as the server writes it, so
/// that a truncated copy is caught.
public func timelineHistoryProblem(_ bytes: [UInt8], timeline: UInt32) -> String? {
    switch parseTimelineHistory(bytes, timeline: timeline) {
    case .success: nil
    case .failure(let problem): problem.reason
    }
}

/// Why a timeline history file was refused (timelineHistoryProblem).
public struct TimelineHistoryProblem: Error, Sendable, Equatable {
    public let reason: String
}

/// The entries of a timeline history file for `timeline`, oldest first, by the rules of
/// timelineHistoryProblem.
public func parseTimelineHistory(_ bytes: [UInt8], timeline: UInt32) -> Result<[TimelineHistoryEntry], TimelineHistoryProblem> {
    func problem(_ reason: String) -> Result<[TimelineHistoryEntry], TimelineHistoryProblem> { .failure(TimelineHistoryProblem(reason: reason)) }
    guard !bytes.isEmpty else { return problem("file is empty") }
    guard bytes.last == UInt8(ascii: "\n") else { return problem("file does not end with a newline (truncated?)") }
    var entries: [TimelineHistoryEntry] = []
    var number = 0
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
        number += 1
        let content = line.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
        if content.isEmpty || content.first == UInt8(ascii: "#") { continue }
        let fields = line.split(separator: 0x09, maxSplits: 2, omittingEmptySubsequences: false)
        guard let tliText = fields.first, let tli = UInt32(String(decoding: tliText, as: UTF8.self)) else {
            return problem("line \(number): expected a numeric timeline ID")
        }
        guard fields.count >= 2, let switchpoint = parseLSN(String(decoding: fields[1], as: UTF8.self)) else {
            return problem("line \(number): expected a write-ahead log switchpoint location")
        }
        if let last = entries.last, tli <= last.parent { return problem("line \(number): timeline IDs must be in increasing sequence") }
        entries.append(TimelineHistoryEntry(parent: tli, switchpoint: switchpoint))
    }
    guard let last = entries.last else { return problem("file lists no parent timeline") }
    guard last.parent < timeline else { return problem("timeline IDs must be less than the file's own timeline \(timeline)") }
    return .success(entries)
}

/// The largest timeline history file walferry accepts (the server's are a line per timeline switch).
public let maximumTimelineHistorySize: UInt64 = 16 << 20
