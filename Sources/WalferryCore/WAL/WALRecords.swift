// The pages and records of one WAL segment, read the way the server reads them in recovery.
//
// Like PostgreSQL's XLogDecodeNextRecord with XLogReaderValidatePageHeader, ValidXLogRecordHeader and
// ValidXLogRecord (src/backend/access/transam/xlogreader.c; docs/server-rules.md §3 and §7), walking
// one file from its first whole record to its end or to its XLOG_SWITCH record, except that:
// - a record that began in the previous segment cannot be checked: its start, its length and its CRC
//   are in the other file. Its continuation is skipped by the page headers' xlp_rem_len, as
//   XLogFindNextRecord skips it, and only the chain of those lengths is checked;
// - a record that continues into the next segment is checked as far as this file goes: its header
//   (when the header is here), and the flag and xlp_rem_len of each page it continues on, but not its
//   CRC, which covers bytes in the other file;
// - the first record read has no predecessor here, so its prev-link is only checked to point before it
//   (the server's own rule when it starts reading at a given position);
// - the end of the WAL (the first invalid page or record) is an error in a segment, which the server
//   archives only once complete: every segment ends with an XLOG_SWITCH record or with WAL up to its
//   last byte. A `.partial` segment ends where its WAL ends, and that end is accepted when nothing of
//   this segment's WAL follows it: no later page carries this segment's magic and its own address (a
//   recycled file's old pages carry older addresses; a fresh one is zeros). WAL pages after the end
//   mean that something in the middle is damaged.

/// Why a segment's pages or records are not the WAL the server will read.
public struct WALRecordProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, in the words of the server's reader where it has them.
    public enum Kind: Sendable, Equatable {
        case invalidMagic(UInt16)
        case invalidInfoBits(UInt16)
        case unexpectedPageAddress(UInt64)
        case outOfSequenceTimeline(UInt32, after: UInt32)
        case unexpectedTimeline(UInt32)
        /// A page says it continues a record where a new record must start.
        case contrecordRequested
        /// A record goes on past its page, but the next page does not continue it.
        case noContrecordFlag
        case invalidContrecordLength(UInt32, expected: UInt64)
        case invalidRecordLength(UInt32)
        case recordTooLong(UInt32)
        case invalidResourceManager(UInt8)
        case incorrectPrevLink(UInt64)
        case incorrectChecksum
    }

    public let kind: Kind
    /// The LSN of the bad page or record.
    public let lsn: UInt64
    /// The segment's name, as the server names it in its messages.
    public let segment: String
    /// Where the segment's start LSN is.
    public let segmentStart: UInt64
    /// For a `.partial` segment: the first page of its WAL found after the end of the WAL at `lsn`.
    public let walResumesAt: UInt64?

    public var description: String {
        let at = formatLSN(lsn)
        let inSegment = "in WAL segment \(segment), LSN \(at), offset \(lsn &- segmentStart)"
        var text: String
        switch kind {
        case .invalidMagic(let magic): text = "invalid magic number \(hex4(magic)) \(inSegment)"
        case .invalidInfoBits(let info): text = "invalid info bits \(hex4(info)) \(inSegment)"
        case .unexpectedPageAddress(let address): text = "unexpected pageaddr \(formatLSN(address)) \(inSegment)"
        case .outOfSequenceTimeline(let tli, let after): text = "out-of-sequence timeline ID \(tli) (after \(after)) \(inSegment)"
        case .unexpectedTimeline(let tli): text = "unexpected timeline ID \(tli) \(inSegment)"
        case .contrecordRequested: text = "contrecord is requested by \(at)"
        case .noContrecordFlag: text = "there is no contrecord flag at \(at)"
        case .invalidContrecordLength(let found, let expected): text = "invalid contrecord length \(found) (expected \(expected)) at \(at)"
        case .invalidRecordLength(let length): text = "invalid record length at \(at): expected at least \(recordHeaderSize), got \(length)"
        case .recordTooLong(let length): text = "record length \(length) at \(at) too long"
        case .invalidResourceManager(let rmid): text = "invalid resource manager ID \(rmid) at \(at)"
        case .incorrectPrevLink(let prev): text = "record with incorrect prev-link \(formatLSN(prev)) at \(at)"
        case .incorrectChecksum: text = "incorrect resource manager data checksum in record at \(at)"
        }
        if let resumes = walResumesAt { text += ", but WAL of this segment follows at \(formatLSN(resumes))" }
        return text
    }
}

private func hex4(_ value: UInt16) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// SizeOfXLogRecord: xl_tot_len, xl_xid, xl_prev, xl_info, xl_rmid, 2 bytes of padding, xl_crc.
let recordHeaderSize = 24
/// Where xl_crc is in the record header; the CRC covers the header up to it.
private let recordCRCOffset = 20
/// SizeOfXLogShortPHD, MAXALIGNed, and SizeOfXLogLongPHD.
private let shortPageHeaderSize = 24
private let longPageHeaderSize = 40
/// XLP_FIRST_IS_CONTRECORD and XLP_FIRST_IS_OVERWRITE_CONTRECORD.
private let firstIsContrecord: UInt16 = 0x0001
private let firstIsOverwriteContrecord: UInt16 = 0x0008
/// MaxAllocSize: the longest record the server will assemble.
private let maximumRecordLength: UInt32 = 0x3FFF_FFFF
/// RM_XLOG_ID's XLOG_SWITCH, in the high four bits of xl_info (the low four are XLR_INFO_MASK).
private let switchInfo: UInt8 = 0x40

@inline(__always) private func align8(_ value: Int) -> Int { (value + 7) & ~7 }

/// Reads the pages and records of the segment `bytes` (the whole file, whose first page header
/// `first` checkWALSegment has accepted), as the server will. `partial` accepts an end of the WAL
/// before the end of the file (a `.partial` segment).
public func checkWALRecords(_ bytes: UnsafeRawBufferPointer, name: WALFileName, first: WALLongPageHeader,
                            partial: Bool) throws(WALRecordProblem) {
    var reader = SegmentReader(bytes: bytes, name: name, first: first)
    do throws(SegmentReader.Stop) {
        try reader.read()
    } catch {
        guard partial else { throw reader.problem(error) }
        // The end of a .partial segment's WAL: nothing of this segment may follow it.
        let start = (error.furthestOffset / reader.blockSize + 1) * reader.blockSize
        for page in stride(from: start, to: bytes.count, by: reader.blockSize)
        where reader.magic(at: page) == first.magic && reader.pageAddress(at: page) == reader.start + UInt64(page) {
            throw reader.problem(error, resumesAt: reader.start + UInt64(page))
        }
    }
}

/// One pass over a segment's pages and records.
private struct SegmentReader {
    /// Where and why the reader stopped: `offset` is what it names, `furthestOffset` the furthest
    /// byte it had read then (in a record spanning pages, the page where it gave up).
    struct Stop: Error {
        let kind: WALRecordProblem.Kind
        let offset: Int
        let furthestOffset: Int
    }

    let bytes: UnsafeRawBufferPointer
    let name: WALFileName
    let first: WALLongPageHeader
    let start: UInt64
    let blockSize: Int
    /// Custom resource managers (128 to 255) exist from PostgreSQL 15.
    let customResourceManagers: Bool
    var latestTimeline: UInt32
    /// The previous record's LSN; nil before the first whole record.
    var previous: UInt64?

    init(bytes: UnsafeRawBufferPointer, name: WALFileName, first: WALLongPageHeader) {
        self.bytes = bytes
        self.name = name
        self.first = first
        start = first.pageAddress
        blockSize = Int(first.blockSize)
        customResourceManagers = (first.postgresVersion ?? 0) >= 15
        latestTimeline = first.timeline
    }

    func problem(_ stop: Stop, resumesAt: UInt64? = nil) -> WALRecordProblem {
        WALRecordProblem(kind: stop.kind, lsn: start + UInt64(stop.offset), segment: WALFileName(timeline: name.timeline, log: name.log, segment: name.segment).description,
                         segmentStart: start, walResumesAt: resumesAt)
    }

    @inline(__always) func load<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    func magic(at page: Int) -> UInt16 { load(page, as: UInt16.self) }
    func info(at page: Int) -> UInt16 { load(page + 2, as: UInt16.self) }
    func pageAddress(at page: Int) -> UInt64 { load(page + 8, as: UInt64.self) }
    func remainingLength(at page: Int) -> UInt32 { load(page + 16, as: UInt32.self) }
    func headerSize(at page: Int) -> Int { page == 0 ? longPageHeaderSize : shortPageHeaderSize }

    /// XLogReaderValidatePageHeader on a page after the first (whose long header checkWALSegment read).
    mutating func validatePage(_ page: Int) throws(Stop) {
        func stop(_ kind: WALRecordProblem.Kind) -> Stop { Stop(kind: kind, offset: page, furthestOffset: page) }
        let magic = magic(at: page), info = info(at: page)
        guard magic == first.magic else { throw stop(.invalidMagic(magic)) }
        // A long header past the first page would be read as one: never written there.
        guard info & ~WALLongPageHeader.allFlags == 0, info & WALLongPageHeader.longHeaderFlag == 0 else {
            throw stop(.invalidInfoBits(info))
        }
        let address = pageAddress(at: page)
        guard address == start + UInt64(page) else { throw stop(.unexpectedPageAddress(address)) }
        let timeline = load(page + 4, as: UInt32.self)
        guard timeline >= latestTimeline else { throw stop(.outOfSequenceTimeline(timeline, after: latestTimeline)) }
        // The server's expectedTLEs check: no page of a segment is on a timeline after the file's.
        guard timeline <= name.timeline else { throw stop(.unexpectedTimeline(timeline)) }
        latestTimeline = timeline
    }

    mutating func read() throws(Stop) {
        var offset = longPageHeaderSize
        if first.info & firstIsContrecord != 0 {
            // The first bytes finish a record that began in the previous segment: unknown here, it
            // cannot be CRC-checked; follow the chain of xlp_rem_len to where the next record starts.
            guard let next = try skipContinuation() else { return }
            offset = next
        }
        while offset < bytes.count {
            guard let next = try readRecord(at: offset) else { return }
            offset = next
        }
    }

    /// Skips the rest of a record continued from the previous segment; returns where the next record
    /// starts, or nil when the continuation fills the segment.
    mutating func skipContinuation() throws(Stop) -> Int? {
        var page = 0
        var remaining = UInt64(first.remainingLength)
        guard remaining > 0 else {
            throw Stop(kind: .invalidContrecordLength(0, expected: 1), offset: longPageHeaderSize, furthestOffset: 0)
        }
        while true {
            let room = UInt64(blockSize - headerSize(at: page))
            if remaining <= room { return page + headerSize(at: page) + align8(Int(remaining)) }
            remaining -= room
            page += blockSize
            if page >= bytes.count { return nil }
            try validatePage(page)
            // An aborted record's continuation was overwritten: a new record starts on this page.
            if info(at: page) & firstIsOverwriteContrecord != 0 { return page + shortPageHeaderSize }
            guard info(at: page) & firstIsContrecord != 0 else {
                throw Stop(kind: .noContrecordFlag, offset: page, furthestOffset: page)
            }
            let found = remainingLength(at: page)
            guard UInt64(found) == remaining else {
                throw Stop(kind: .invalidContrecordLength(found, expected: remaining), offset: page, furthestOffset: page)
            }
        }
    }

    /// Reads the record that starts at `offset` (or, at a page boundary, after that page's header);
    /// returns where the next one starts, or nil when the segment's WAL ends with it.
    mutating func readRecord(at position: Int) throws(Stop) -> Int? {
        var offset = position
        if offset % blockSize == 0 {
            try validatePage(offset)
            offset += shortPageHeaderSize
            guard info(at: position) & firstIsContrecord == 0 else {
                throw Stop(kind: .contrecordRequested, offset: offset, furthestOffset: offset)
            }
        }
        let lsn = start + UInt64(offset)
        func stop(_ kind: WALRecordProblem.Kind, furthest: Int? = nil) -> Stop {
            Stop(kind: kind, offset: offset, furthestOffset: furthest ?? offset)
        }
        let length = load(offset, as: UInt32.self)
        let onPage = blockSize - offset % blockSize
        guard length >= UInt32(recordHeaderSize) else { throw stop(.invalidRecordLength(length)) }
        guard length <= maximumRecordLength else { throw stop(.recordTooLong(length)) }

        if Int(length) <= onPage {
            // The common case: the whole record on this page.
            try validateHeader(at: offset, lsn: lsn)
            let record = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(length))])
            guard recordCRC(record) == load(offset + recordCRCOffset, as: UInt32.self) else { throw stop(.incorrectChecksum) }
            return finish(lsn: lsn, info: bytes[offset + 16], rmid: bytes[offset + 17], next: offset + align8(Int(length)))
        }

        // The record goes on over the following pages. The CRC covers the data after the header, then
        // the header up to xl_crc; the header itself may be split over two pages.
        var header = [UInt8]()
        header.reserveCapacity(recordHeaderSize)
        var crc = CRC32C()
        var got = 0
        var page = offset - offset % blockSize
        var fragment = UnsafeRawBufferPointer(rebasing: bytes[offset..<(page + blockSize)])
        var headerChecked = false
        while true {
            let headerPart = min(fragment.count, recordHeaderSize - header.count)
            if headerPart > 0 { header.append(contentsOf: fragment.prefix(headerPart)) }
            crc.update(UnsafeRawBufferPointer(rebasing: fragment[(fragment.startIndex + headerPart)...]))
            got += fragment.count
            if !headerChecked && header.count == recordHeaderSize {
                try header.withUnsafeBytes { raw in
                    Result { () throws(Stop) in try validateHeader(raw, lsn: lsn, offset: offset, furthest: page) }
                }.get()
                headerChecked = true
            }
            if got == Int(length) { break }
            page += blockSize
            // The rest is in the next segment: its CRC cannot be checked from this file.
            if page >= bytes.count { return nil }
            try validatePage(page)
            if info(at: page) & firstIsOverwriteContrecord != 0 {
                // The server wrote over this record's missing continuation after a crash: it drops the
                // record and reads on from this page, with the previous record as the prev-link.
                return try readRecord(at: page)
            }
            guard info(at: page) & firstIsContrecord != 0 else { throw stop(.noContrecordFlag, furthest: page) }
            let remaining = remainingLength(at: page)
            guard remaining != 0, Int(remaining) == Int(length) - got else {
                throw stop(.invalidContrecordLength(remaining, expected: UInt64(Int(length) - got)), furthest: page)
            }
            let take = min(Int(remaining), blockSize - shortPageHeaderSize)
            fragment = UnsafeRawBufferPointer(rebasing: bytes[(page + shortPageHeaderSize)..<(page + shortPageHeaderSize + take)])
        }
        let expected = header.withUnsafeBytes { raw -> UInt32 in
            crc.update(UnsafeRawBufferPointer(rebasing: raw[..<recordCRCOffset]))
            return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: recordCRCOffset, as: UInt32.self))
        }
        guard crc.value == expected else { throw stop(.incorrectChecksum, furthest: page) }
        let next = page + shortPageHeaderSize + align8(Int(remainingLength(at: page)))
        return finish(lsn: lsn, info: header[16], rmid: header[17], next: next)
    }

    /// The CRC-32C of a record held whole in `record`: its data, then its header up to xl_crc.
    private func recordCRC(_ record: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(UnsafeRawBufferPointer(rebasing: record[recordHeaderSize...]))
        crc.update(UnsafeRawBufferPointer(rebasing: record[..<recordCRCOffset]))
        return crc.value
    }

    func validateHeader(at offset: Int, lsn: UInt64) throws(Stop) {
        try validateHeader(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + recordHeaderSize)]), lsn: lsn, offset: offset, furthest: offset)
    }

    /// ValidXLogRecordHeader (xl_tot_len was checked already): the resource manager and the prev-link.
    func validateHeader(_ header: UnsafeRawBufferPointer, lsn: UInt64, offset: Int, furthest: Int) throws(Stop) {
        let rmid = header[17]
        guard rmid <= 21 || (customResourceManagers && rmid >= 128) else {
            throw Stop(kind: .invalidResourceManager(rmid), offset: offset, furthestOffset: furthest)
        }
        let prev = UInt64(littleEndian: header.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        if let previous, prev != previous {
            throw Stop(kind: .incorrectPrevLink(prev), offset: offset, furthestOffset: furthest)
        } else if previous == nil, prev >= lsn {
            throw Stop(kind: .incorrectPrevLink(prev), offset: offset, furthestOffset: furthest)
        }
    }

    /// After a sound record: nil when it is an XLOG_SWITCH record, after which the server reads
    /// nothing more of the segment; else `next`.
    private mutating func finish(lsn: UInt64, info: UInt8, rmid: UInt8, next: Int) -> Int? {
        previous = lsn
        if rmid == 0 && info & 0xF0 == switchInfo { return nil }
        return next
    }
}
