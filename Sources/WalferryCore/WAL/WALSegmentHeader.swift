// The long page header at the start of every WAL segment, and the checks a tool can make on one
// segment without its predecessor: this file's on the first page, WALRecords.swift's on the rest.
//
// Equivalent to the checks of PostgreSQL's XLogReaderValidatePageHeader on a segment's first page
// (magic, info bits, system identifier, segment size, block size, page address), except that:
// - the timeline only has to be between 1 and the name's timeline, not equal to it: the first page of
//   a new timeline's first segment carries the old timeline (docs/server-rules.md §3.4);
// - the magic must belong to a PostgreSQL release this walferry knows (9.6 to 18), so that WAL from an
//   unknown format is refused rather than stored unchecked;
// - the file size must equal the segment size the header declares, which catches a truncated copy.

/// The fields of an XLogLongPageHeaderData (40 bytes, little-endian on every platform walferry runs on).
public struct WALLongPageHeader: Sendable, Equatable {
    public static let size = 40

    public let magic: UInt16
    public let info: UInt16
    public let timeline: UInt32
    public let pageAddress: UInt64
    public let remainingLength: UInt32
    public let systemIdentifier: UInt64
    public let segmentSize: UInt32
    public let blockSize: UInt32

    /// XLP_LONG_HEADER: set on a segment's first page, and only there.
    public static let longHeaderFlag: UInt16 = 0x0002
    /// XLP_ALL_FLAGS in PostgreSQL 14-18 (and the back-patched minors of 10-13); a reader rejects any
    /// other bit.
    public static let allFlags: UInt16 = 0x000F

    /// Reads the header from the first 40 bytes of `bytes`; nil when there are fewer.
    public init?(_ bytes: some Collection<UInt8>) {
        let header = Array(bytes.prefix(WALLongPageHeader.size))
        guard header.count == WALLongPageHeader.size else { return nil }
        func little<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value: T = 0
            for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(header[offset + index]) }
            return value
        }
        magic = little(0, UInt16.self)
        info = little(2, UInt16.self)
        timeline = little(4, UInt32.self)
        pageAddress = little(8, UInt64.self)
        remainingLength = little(16, UInt32.self)
        systemIdentifier = little(24, UInt64.self)
        segmentSize = little(32, UInt32.self)
        blockSize = little(36, UInt32.self)
    }

    /// The PostgreSQL major version whose WAL carries this magic, or nil for an unknown magic.
    public var postgresVersion: Int? { WALLongPageHeader.versionsByMagic[magic] }

    /// XLOG_PAGE_MAGIC of each major version (docs/server-rules.md §3.2).
    static let versionsByMagic: [UInt16: Int] = [
        0xD093: 9, 0xD097: 10, 0xD098: 11, 0xD101: 12, 0xD106: 13, 0xD10D: 14,
        0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18,
    ]
}

/// What one segment says about the cluster that wrote it.
public struct WALSegmentFacts: Sendable, Equatable {
    public let systemIdentifier: UInt64
    public let segmentSize: WALSegmentSize
    /// The major version, from the page magic (9 stands for 9.6).
    public let postgresVersion: Int
}

/// Why a file is not a sound WAL segment.
public enum WALSegmentProblem: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(size: UInt64)
    case unknownMagic(UInt16)
    case badInfoBits(UInt16)
    case badSegmentSize(UInt32)
    case badBlockSize(UInt32)
    case sizeMismatch(fileSize: UInt64, declared: UInt32)
    case segmentOutOfRange(segment: UInt32, segmentSize: WALSegmentSize)
    case pageAddressMismatch(found: UInt64, expected: UInt64)
    case timelineMismatch(found: UInt32, nameTimeline: UInt32)
    case zeroSystemIdentifier
    /// A page or record after the first page header (WALRecords.swift).
    case records(WALRecordProblem)

    public var description: String {
        switch self {
        case .tooShort(let size):
            return "file is \(size) bytes, too short for a WAL segment header"
        case .unknownMagic(let magic):
            return "unknown WAL page magic 0x\(String(magic, radix: 16, uppercase: true)) (not PostgreSQL 9.6 to 18)"
        case .badInfoBits(let info):
            return "invalid info bits 0x\(String(info, radix: 16, uppercase: true)) in the first page header"
        case .badSegmentSize(let size):
            return "invalid WAL segment size \(size) in the page header"
        case .badBlockSize(let size):
            return "invalid WAL block size \(size) in the page header"
        case .sizeMismatch(let fileSize, let declared):
            return "file is \(fileSize) bytes, but its header declares \(declared)-byte segments"
        case .segmentOutOfRange(let segment, let size):
            return "segment number \(segment) in the file name cannot exist with \(size) segments"
        case .pageAddressMismatch(let found, let expected):
            return "page address \(formatLSN(found)) in the header, but the file name says \(formatLSN(expected))"
        case .timelineMismatch(let found, let nameTimeline):
            return "timeline \(found) in the header, but the file name says timeline \(nameTimeline)"
        case .zeroSystemIdentifier:
            return "system identifier 0 in the page header"
        case .records(let problem):
            return problem.description
        }
    }
}

/// Checks the first page of `name`'s contents (`firstBytes`, at least 40 bytes) and the file's size;
/// returns what the segment says about its cluster. Only for segments and `.partial` files.
public func checkWALSegment(name: WALFileName, firstBytes: some Collection<UInt8>, fileSize: UInt64) throws(WALSegmentProblem) -> WALSegmentFacts {
    guard let header = WALLongPageHeader(firstBytes) else { throw .tooShort(size: fileSize) }
    guard let version = header.postgresVersion else { throw .unknownMagic(header.magic) }
    guard header.info & WALLongPageHeader.longHeaderFlag != 0, header.info & ~WALLongPageHeader.allFlags == 0 else {
        throw .badInfoBits(header.info)
    }
    guard let segmentSize = WALSegmentSize(bytes: UInt64(header.segmentSize)) else { throw .badSegmentSize(header.segmentSize) }
    let block = header.blockSize
    guard block >= 1024, block <= 65536, block & (block &- 1) == 0, header.segmentSize % block == 0 else {
        throw .badBlockSize(block)
    }
    guard fileSize == UInt64(header.segmentSize) else { throw .sizeMismatch(fileSize: fileSize, declared: header.segmentSize) }
    guard let expected = name.startLSN(segmentSize: segmentSize) else {
        throw .segmentOutOfRange(segment: name.segment, segmentSize: segmentSize)
    }
    guard header.pageAddress == expected else { throw .pageAddressMismatch(found: header.pageAddress, expected: expected) }
    guard header.timeline >= 1, header.timeline <= name.timeline else {
        throw .timelineMismatch(found: header.timeline, nameTimeline: name.timeline)
    }
    guard header.systemIdentifier != 0 else { throw .zeroSystemIdentifier }
    return WALSegmentFacts(systemIdentifier: header.systemIdentifier, segmentSize: segmentSize, postgresVersion: version)
}

/// Checks a whole segment (or `.partial`) file: its first page and size against `name`, then every
/// page and record the server will read (WALRecords.swift); returns what the segment says about its
/// cluster.
public func checkWALSegment(name: WALFileName, contents: UnsafeRawBufferPointer) throws(WALSegmentProblem) -> WALSegmentFacts {
    let facts = try checkWALSegment(name: name, firstBytes: contents.prefix(WALLongPageHeader.size), fileSize: UInt64(contents.count))
    try checkWALSegmentRecords(name: name, contents: contents)
    return facts
}

/// Checks every page and record of `contents` (WALRecords.swift), once its first page has passed
/// checkWALSegment(name:firstBytes:fileSize:).
public func checkWALSegmentRecords(name: WALFileName, contents: UnsafeRawBufferPointer) throws(WALSegmentProblem) {
    guard let header = WALLongPageHeader(contents.prefix(WALLongPageHeader.size)) else { throw .tooShort(size: UInt64(contents.count)) }
    do throws(WALRecordProblem) {
        try checkWALRecords(contents, name: name, first: header, partial: name.kind == .partial)
    } catch {
        throw .records(error)
    }
}

/// An LSN as PostgreSQL prints it: `%X/%X`.
public func formatLSN(_ lsn: UInt64) -> String {
    String(lsn >> 32, radix: 16, uppercase: true) + "/" + String(lsn & 0xFFFF_FFFF, radix: 16, uppercase: true)
}

/// Parses "X/Y" (hex, either case, 1 to 8 digits each side), as pg_lsn_in.
public func parseLSN(_ text: some StringProtocol) -> UInt64? {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
          let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else { return nil }
    return high << 32 | low
}
