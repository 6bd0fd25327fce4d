// Table-driven tests of the WAL file-name type: parsing, classification, rendering and the
// segment-number arithmetic for every wal_segment_size initdb accepts.

import Testing
@testable import WalferryCore

struct WALFileNameTests {
    struct Parsed: Sendable, CustomTestStringConvertible {
        let name: String
        let kind: WALFileName.Kind
        let timeline: UInt32
        let log: UInt32
        let segment: UInt32
        let compression: WALFileName.Compression?
        var testDescription: String { name }
    }

    static let valid: [Parsed] = [
        Parsed(name: "000000010000000000000003", kind: .segment, timeline: 1, log: 0, segment: 3, compression: nil),
        Parsed(name: "0000000A000000FF000000FE", kind: .segment, timeline: 10, log: 255, segment: 254, compression: nil),
        Parsed(name: "FFFFFFFFFFFFFFFFFFFFFFFF", kind: .segment, timeline: .max, log: .max, segment: .max, compression: nil),
        Parsed(name: "000000000000000000000000", kind: .segment, timeline: 0, log: 0, segment: 0, compression: nil),
        Parsed(name: "000000010000000000000013.partial", kind: .partial, timeline: 1, log: 0, segment: 0x13, compression: nil),
        Parsed(name: "000000010000000000000003.00000028.backup", kind: .backupHistory(offset: 0x28), timeline: 1, log: 0, segment: 3, compression: nil),
        Parsed(name: "00000002.history", kind: .timelineHistory, timeline: 2, log: 0, segment: 0, compression: nil),
        Parsed(name: "000000010000000000000003.bz2", kind: .segment, timeline: 1, log: 0, segment: 3, compression: .bzip2),
        Parsed(name: "000000010000000000000013.partial.bz2", kind: .partial, timeline: 1, log: 0, segment: 0x13, compression: .bzip2),
        Parsed(name: "000000010000000000000003.00000028.backup.bz2", kind: .backupHistory(offset: 0x28), timeline: 1, log: 0, segment: 3, compression: .bzip2),
        Parsed(name: "00000002.history.bz2", kind: .timelineHistory, timeline: 2, log: 0, segment: 0, compression: .bzip2),
        Parsed(name: "000000010000000000000003.gz", kind: .segment, timeline: 1, log: 0, segment: 3, compression: .gzip),
        Parsed(name: "000000010000000000000003.zst", kind: .segment, timeline: 1, log: 0, segment: 3, compression: .zstd),
        Parsed(name: "000000010000000000000003.lz4", kind: .segment, timeline: 1, log: 0, segment: 3, compression: .lz4),
        Parsed(name: "000000010000000000000003.xz", kind: .segment, timeline: 1, log: 0, segment: 3, compression: .xz),
    ]

    @Test(arguments: valid)
    func parsesAndRendersBack(_ expected: Parsed) throws {
        let name = try #require(WALFileName(expected.name))
        #expect(name.kind == expected.kind)
        #expect(name.timeline == expected.timeline)
        #expect(name.log == expected.log)
        #expect(name.segment == expected.segment)
        #expect(name.compression == expected.compression)
        #expect(name.description == expected.name)
        #expect(WALFileName(bytes: Array(expected.name.utf8)) == name)
        #expect(name.uncompressed.compression == nil)
        #expect(name.uncompressed.compressed(expected.compression) == name)
    }

    static let invalid = [
        "",
        "notwal",
        "00000001000000000000000a",  // lower case is not a WAL name to PostgreSQL
        "0000000100000000000000003",  // 25 characters
        "00000001000000000000003",  // 23 characters
        "00000001000000000000000G",
        "000000010000000000000003.backup",  // pg_archivecleanup accepts this as a cut-off; a real file never has it
        "000000010000000000000003.1.backup",
        "000000010000000000000003.0000002.backup",
        "000000010000000000000003.0000002x.backup",
        "000000010000000000000003.00000028.backupx",
        "000000010000000000000003.partialx",
        "000000010000000000000003.partial.partial",
        "000000010000000000000003.bz2.bz2",
        "000000010000000000000003.bz3",
        "000000010000000000000003.BZ2",
        "00000002.HISTORY",
        "0000002.history",
        "0000000a.history",
        "/000000010000000000000003",
        "archive/000000010000000000000003",
        "000000010000000000000003 ",
    ]

    @Test(arguments: invalid)
    func rejects(_ text: String) {
        #expect(WALFileName(text) == nil)
    }

    @Test func holdsWAL() throws {
        #expect(try #require(WALFileName("000000010000000000000003")).holdsWAL)
        #expect(try #require(WALFileName("000000010000000000000003.partial.bz2")).holdsWAL)
        #expect(try !#require(WALFileName("00000002.history")).holdsWAL)
        #expect(try !#require(WALFileName("000000010000000000000003.00000028.backup")).holdsWAL)
    }

    // MARK: - Segment sizes and numbers

    @Test(arguments: [1 << 20, 1 << 21, 1 << 24, 1 << 26, 1 << 29, 1 << 30] as [UInt64])
    func acceptsInitdbSegmentSizes(_ bytes: UInt64) throws {
        let size = try #require(WALSegmentSize(bytes: bytes))
        #expect(UInt64(size.bytes) == bytes)
        #expect(UInt64(size.segmentsPerLog) * bytes == 1 << 32)
    }

    @Test(arguments: [0, 1, 1 << 19, 3 << 20, 1 << 31, 1 << 32, (1 << 20) + 1] as [UInt64])
    func rejectsOtherSegmentSizes(_ bytes: UInt64) {
        #expect(WALSegmentSize(bytes: bytes) == nil)
    }

    struct Roll: Sendable, CustomTestStringConvertible {
        let megabytes: UInt64
        let perLog: UInt32
        let lastBeforeRoll: String
        var testDescription: String { "\(megabytes) MB" }
    }

    /// docs/server-rules.md §2: the last name before a log roll, checked with pg_walfile_name().
    static let rolls = [
        Roll(megabytes: 1, perLog: 4096, lastBeforeRoll: "000000010000000000000FFF"),
        Roll(megabytes: 16, perLog: 256, lastBeforeRoll: "0000000100000000000000FF"),
        Roll(megabytes: 64, perLog: 64, lastBeforeRoll: "00000001000000000000003F"),
        Roll(megabytes: 1024, perLog: 4, lastBeforeRoll: "000000010000000000000003"),
    ]

    @Test(arguments: rolls)
    func segmentNumbersAcrossALogRoll(_ roll: Roll) throws {
        let size = try #require(WALSegmentSize(bytes: roll.megabytes << 20))
        #expect(size.segmentsPerLog == roll.perLog)
        let last = try #require(WALFileName(roll.lastBeforeRoll))
        let number = try #require(last.segmentNumber(segmentSize: size))
        #expect(number == UInt64(roll.perLog) - 1)
        let next = WALFileName(timeline: 1, segmentNumber: number + 1, segmentSize: size)
        #expect(next.description == "000000010000000100000000")
        #expect(next.segmentNumber(segmentSize: size) == number + 1)
        #expect(next.startLSN(segmentSize: size) == 1 << 32)
        // A segment field at or beyond segmentsPerLog cannot exist with this size.
        let outOfRange = WALFileName(timeline: 1, log: 0, segment: roll.perLog)
        #expect(outOfRange.segmentNumber(segmentSize: size) == nil)
        #expect(outOfRange.startLSN(segmentSize: size) == nil)
    }

    @Test func startLSNOfADefaultSizeSegment() throws {
        let name = try #require(WALFileName("00000001000000020000000C"))
        #expect(name.segmentNumber(segmentSize: .default) == 2 * 256 + 12)
        #expect(name.startLSN(segmentSize: .default) == 0x2_0C00_0000)
        #expect(WALFileName.timelineHistory(2).segmentNumber(segmentSize: .default) == nil)
    }

    @Test func timelineHistoryIgnoresLogAndSegment() {
        #expect(WALFileName(timeline: 3, log: 7, segment: 9, kind: .timelineHistory).description == "00000003.history")
        #expect(WALFileName.timelineHistory(0xA, compression: .bzip2).description == "0000000A.history.bz2")
    }
}
