// The names PostgreSQL gives the files it hands to archive_command and asks for in restore_command.
//
// Equivalent to the predicates of PostgreSQL's access/xlog_internal.h (IsXLogFileName,
// IsPartialXLogFileName, IsBackupHistoryFileName, IsTLHistoryFileName) and to XLogFromFileName, except:
// - it is strict where PostgreSQL is loose: a backup history name needs its 8-digit offset
//   (pg_archivecleanup's own loose rules live in Cleanup/CleanupRules.swift, where they are needed);
// - it also knows a trailing compression suffix (".bz2", ...), which PostgreSQL never sees;
// - segment numbers are checked against wal_segment_size instead of being taken on trust.

/// The size of one WAL segment, fixed by `initdb --wal-segsize`: a power of two from 1 MB to 1 GB.
public struct WALSegmentSize: Hashable, Sendable, CustomStringConvertible {
    /// The size in bytes.
    public let bytes: UInt32

    /// PostgreSQL's default, 16 MB.
    public static let `default` = WALSegmentSize(uncheckedBytes: 16 * 1024 * 1024)

    /// Accepts exactly what initdb accepts ("a power of 2 between 1 and 1024" megabytes); nil otherwise.
    public init?(bytes: UInt64) {
        guard bytes >= 1 << 20, bytes <= 1 << 30, bytes & (bytes - 1) == 0 else { return nil }
        self.bytes = UInt32(bytes)
    }

    private init(uncheckedBytes: UInt32) { self.bytes = uncheckedBytes }

    /// How many segments one "log" (the middle 8 hex digits of a name) holds: 0x100000000 / size.
    public var segmentsPerLog: UInt32 { UInt32((UInt64(1) << 32) / UInt64(bytes)) }

    public var description: String { "\(bytes / (1 << 20)) MB" }
}

/// A parsed WAL archive file name: a segment, a `.partial` segment, a backup history file or a
/// timeline history file, optionally followed by a compression suffix.
///
/// Names are upper-case hexadecimal; `00000001000000000000000a` is not a WAL name to PostgreSQL,
/// and not to this type either.
public struct WALFileName: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// `000000010000000000000003`
        case segment
        /// `000000010000000000000003.partial`: the last, incomplete segment of a timeline that ended.
        case partial
        /// `000000010000000000000003.00000028.backup`: written by pg_backup_stop; the offset is the
        /// backup's start LSN within the segment.
        case backupHistory(offset: UInt32)
        /// `00000002.history`: the ancestry of a timeline; only the timeline field is meaningful.
        case timelineHistory
    }

    /// A compression suffix on an archived file. walferry writes `.bz2` only; the others are recognised
    /// so that a tool can say what it found instead of calling the name invalid.
    public enum Compression: String, Hashable, Sendable, CaseIterable {
        case bzip2 = "bz2"
        case gzip = "gz"
        case lz4 = "lz4"
        case zstd = "zst"
        case xz = "xz"

        /// The suffix as it appears in a file name, with its dot.
        public var suffix: String { "." + rawValue }
    }

    public let kind: Kind
    public let timeline: UInt32
    /// The high 32 bits of the segment's position ("log"); 0 for a timeline history file.
    public let log: UInt32
    /// The segment within its log ("seg"); 0 for a timeline history file.
    public let segment: UInt32
    public let compression: Compression?

    /// A plain segment name, from its three fields.
    public init(timeline: UInt32, log: UInt32, segment: UInt32, kind: Kind = .segment, compression: Compression? = nil) {
        self.kind = kind
        self.timeline = timeline
        self.log = kind == .timelineHistory ? 0 : log
        self.segment = kind == .timelineHistory ? 0 : segment
        self.compression = compression
    }

    /// The segment that holds segment number `segmentNumber` (`LSN / segmentSize`) on `timeline`.
    /// The inverse of `segmentNumber(segmentSize:)`; PostgreSQL's XLogFileName.
    public init(timeline: UInt32, segmentNumber: UInt64, segmentSize: WALSegmentSize, kind: Kind = .segment) {
        let perLog = UInt64(segmentSize.segmentsPerLog)
        self.init(timeline: timeline, log: UInt32(truncatingIfNeeded: segmentNumber / perLog),
                  segment: UInt32(segmentNumber % perLog), kind: kind)
    }

    /// A timeline history file's name, `%08X.history`.
    public static func timelineHistory(_ timeline: UInt32, compression: Compression? = nil) -> WALFileName {
        WALFileName(timeline: timeline, log: 0, segment: 0, kind: .timelineHistory, compression: compression)
    }

    /// Parses a file name (not a path). Returns nil for anything that is not exactly one of the four
    /// kinds, upper-case, with at most one known compression suffix.
    public init?(_ name: some StringProtocol) {
        var bytes = Array(name.utf8)
        self.init(bytes: &bytes)
    }

    /// Parses a file name given as the raw bytes of a directory entry.
    public init?(bytes name: some Collection<UInt8>) {
        var bytes = Array(name)
        self.init(bytes: &bytes)
    }

    private init?(bytes: inout [UInt8]) {
        var compression: Compression?
        for candidate in Compression.allCases where bytes.hasSuffix(candidate.suffix.utf8) {
            compression = candidate
            bytes.removeLast(candidate.suffix.utf8.count)
            break
        }
        guard let parsed = WALFileName.parseUncompressed(bytes[...]) else { return nil }
        self.init(timeline: parsed.timeline, log: parsed.log, segment: parsed.segment, kind: parsed.kind,
                  compression: compression)
    }

    private static func parseUncompressed(_ name: ArraySlice<UInt8>) -> (kind: Kind, timeline: UInt32, log: UInt32, segment: UInt32)? {
        if name.count == 16, name.hasSuffix(".history".utf8), let tli = parseHex32(name.prefix(8)) {
            return (.timelineHistory, tli, 0, 0)
        }
        guard name.count >= 24,
              let tli = parseHex32(name.prefix(8)),
              let log = parseHex32(name.dropFirst(8).prefix(8)),
              let seg = parseHex32(name.dropFirst(16).prefix(8))
        else { return nil }
        let rest = name.dropFirst(24)
        if rest.isEmpty { return (.segment, tli, log, seg) }
        if rest.elementsEqual(".partial".utf8) { return (.partial, tli, log, seg) }
        // ".%08X.backup"
        if rest.count == 16, rest.first == UInt8(ascii: "."), rest.hasSuffix(".backup".utf8),
           let offset = parseHex32(rest.dropFirst().prefix(8)) {
            return (.backupHistory(offset: offset), tli, log, seg)
        }
        return nil
    }

    /// The name of the same file without its compression suffix.
    public var uncompressed: WALFileName {
        WALFileName(timeline: timeline, log: log, segment: segment, kind: kind, compression: nil)
    }

    /// The same file with `compression` as its suffix (nil removes it).
    public func compressed(_ compression: Compression?) -> WALFileName {
        WALFileName(timeline: timeline, log: log, segment: segment, kind: kind, compression: compression)
    }

    /// True for a segment or a `.partial` segment: a file that holds WAL pages.
    public var holdsWAL: Bool { kind == .segment || kind == .partial }

    /// The segment's number, `log * segmentsPerLog + segment`, or nil where the name cannot exist with
    /// this segment size (the segment field is out of range) or is not a segment-based name.
    public func segmentNumber(segmentSize: WALSegmentSize) -> UInt64? {
        guard kind != .timelineHistory, segment < segmentSize.segmentsPerLog else { return nil }
        return UInt64(log) * UInt64(segmentSize.segmentsPerLog) + UInt64(segment)
    }

    /// The LSN of the segment's first byte, or nil as for `segmentNumber(segmentSize:)`.
    public func startLSN(segmentSize: WALSegmentSize) -> UInt64? {
        guard let number = segmentNumber(segmentSize: segmentSize) else { return nil }
        let (lsn, overflow) = number.multipliedReportingOverflow(by: UInt64(segmentSize.bytes))
        return overflow ? nil : lsn
    }

    /// The canonical text of the name, as PostgreSQL writes it.
    public var description: String {
        var text: String
        switch kind {
        case .timelineHistory: text = hex8(timeline) + ".history"
        case .segment: text = hex8(timeline) + hex8(log) + hex8(segment)
        case .partial: text = hex8(timeline) + hex8(log) + hex8(segment) + ".partial"
        case .backupHistory(let offset): text = hex8(timeline) + hex8(log) + hex8(segment) + "." + hex8(offset) + ".backup"
        }
        if let compression { text += compression.suffix }
        return text
    }
}

// MARK: - Hexadecimal helpers shared by the WAL code

/// The value of one upper-case hexadecimal digit, as PostgreSQL's names use them; nil for anything else
/// (lower case included).
@inline(__always)
func upperHexValue(_ byte: UInt8) -> UInt32? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
    default: return nil
    }
}

/// Exactly 8 upper-case hex digits, as `%08X` writes them.
func parseHex32(_ digits: some Collection<UInt8>) -> UInt32? {
    guard digits.count == 8 else { return nil }
    var value: UInt32 = 0
    for byte in digits {
        guard let digit = upperHexValue(byte) else { return nil }
        value = value << 4 | digit
    }
    return value
}

/// `%08X`.
func hex8(_ value: UInt32) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    var out = [UInt8](repeating: 0, count: 8)
    var rest = value
    for index in stride(from: 7, through: 0, by: -1) {
        out[index] = digits[Int(rest & 0xF)]
        rest >>= 4
    }
    return String(decoding: out, as: UTF8.self)
}

extension Collection where Element == UInt8 {
    /// True when the collection ends with exactly these bytes.
    func hasSuffix(_ suffix: some Collection<UInt8>) -> Bool {
        count >= suffix.count && dropFirst(count - suffix.count).elementsEqual(suffix)
    }
}
