// The WAL reader (WALRecords.swift, through WALChecks.swift) on real segments of PostgreSQL 15, 17 and
// 18 (RealWAL in TestSupport): every real segment passes, and one flipped byte in a page header or a
// record is found, named with the LSN pg_waldump names.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

/// The real WAL of each version, made once per test run.
private final class RealWALCache: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var made: [Int: RealWAL] = [:]
    static let shared = RealWALCache()

    func wal(_ version: Int) throws -> RealWAL {
        lock.lock()
        defer { lock.unlock() }
        if let wal = made[version] { return wal }
        let wal = try RealWAL.make(version: version)
        made[version] = wal
        return wal
    }
}

private func check(_ name: String, _ bytes: [UInt8]) -> WALSegmentProblem? {
    guard let parsed = WALFileName(name) else { return .tooShort(size: 0) }
    return bytes.withUnsafeBytes { raw in
        do throws(WALSegmentProblem) {
            _ = try checkWALSegment(name: parsed, contents: raw)
            return nil
        } catch {
            return error
        }
    }
}

private func recordProblem(_ name: String, _ bytes: [UInt8]) -> WALRecordProblem? {
    if case .records(let problem) = check(name, bytes) { return problem }
    return nil
}

private func flipped(_ bytes: [UInt8], at offset: Int, mask: UInt8 = 0x01) -> [UInt8] {
    var copy = bytes
    copy[offset] ^= mask
    return copy
}

private let blockSize = 8192

/// The file offset of byte `index` of the record at file offset `start`, past the page headers between.
private func offset(ofByte index: Int, inRecordAt start: Int) -> Int {
    var position = start, left = index
    while true {
        let room = blockSize - position % blockSize
        if left < room { return position + left }
        left -= room
        position += room + 24
    }
}

@Suite(.serialized) struct WALRecordTests {
    /// The complete segments of timeline 1 that the load filled to the end (pg_waldump, given one
    /// segment, reads it to its end without an error, its last record ending on the last page), in name
    /// order.
    static func fullSegments(_ wal: RealWAL) throws -> [(name: String, bytes: [UInt8], dump: WALDump)] {
        var found: [(String, [UInt8], WALDump)] = []
        for name in wal.files.keys.sorted() where name.hasPrefix("00000001") && !name.hasSuffix(".partial") {
            let bytes = wal.files[name] ?? []
            let dump = try walDump(wal.installation, name: name, bytes: bytes)
            if dump.error == nil, dump.records.count > 20, let last = dump.records.last,
               Int(last.lsn % UInt64(bytes.count)) + last.totalLength > bytes.count - blockSize {
                found.append((name, bytes, dump))
            }
        }
        return found
    }

    @Test(arguments: [15, 17, 18])
    func everyRealSegmentIsSound(version: Int) throws {
        let wal = try RealWALCache.shared.wal(version)
        #expect(wal.files.count >= 8, "too few segments: \(wal.files.keys.sorted())")
        for (name, bytes) in wal.files.sorted(by: { $0.key < $1.key }) {
            #expect(check(name, bytes) == nil, "\(name) (PostgreSQL \(version))")
        }
        // The old timeline's .partial, and the new timeline's first segment, whose first page is the
        // old timeline's.
        #expect(wal.files.keys.contains { $0.hasPrefix("00000001") && $0.hasSuffix(".partial") })
        let firstOfTimeline2 = try #require(wal.files.keys.filter { $0.hasPrefix("00000002") }.min())
        #expect(wal.files[firstOfTimeline2]?[4] == 1)
        #expect(try Self.fullSegments(wal).count >= 2)
    }

    @Test(arguments: [15, 17, 18])
    func aFlippedByteInALaterPageHeaderIsFound(version: Int) throws {
        let wal = try RealWALCache.shared.wal(version)
        let (name, bytes, _) = try #require(try Self.fullSegments(wal).first)
        let start = UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) })
        let segment = String(name.prefix(24))
        for page in [1, 37, bytes.count / blockSize - 1] {
            let at = page * blockSize, lsn = start + UInt64(at)
            let magic = UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
            func expect(_ offset: Int, mask: UInt8, _ kind: WALRecordProblem.Kind) {
                let problem = recordProblem(name, flipped(bytes, at: offset, mask: mask))
                #expect(problem?.kind == kind, "page \(page), byte \(offset - at)")
                #expect(problem?.lsn == lsn)
            }
            expect(at, mask: 0x01, .invalidMagic(magic ^ 0x01))
            expect(at + 2, mask: 0x10, .invalidInfoBits(UInt16(bytes[at + 2] ^ 0x10)))
            expect(at + 4, mask: 0x01, .outOfSequenceTimeline(0, after: 1))
            expect(at + 4, mask: 0x02, .unexpectedTimeline(3))
            expect(at + 9, mask: 0x01, .unexpectedPageAddress(lsn ^ 0x100))
            let problem = recordProblem(name, flipped(bytes, at: at))
            #expect(problem?.description == "invalid magic number \(String(magic ^ 1, radix: 16, uppercase: true)) in WAL segment \(segment), LSN \(formatLSN(lsn)), offset \(at)")
        }
        // A continuation's length (xlp_rem_len) that does not match the record it continues.
        let continued = try #require(stride(from: blockSize, to: bytes.count, by: blockSize).first { bytes[$0 + 2] & 0x01 != 0 })
        let problem = recordProblem(name, flipped(bytes, at: continued + 16, mask: 0x04))
        #expect(problem.map { if case .invalidContrecordLength = $0.kind { true } else { false } } == true, "\(String(describing: problem))")
        #expect(problem.map { $0.lsn < start + UInt64(continued) } == true)
    }

    @Test(arguments: [15, 17, 18])
    func aFlippedByteInARecordIsFound(version: Int) throws {
        let wal = try RealWALCache.shared.wal(version)
        let (name, bytes, dump) = try #require(try Self.fullSegments(wal).first)
        let size = UInt64(bytes.count)
        // The records wholly in this file, after the first (whose prev-link is only checked loosely).
        let whole = dump.records.dropFirst().filter { Int($0.lsn % size) + $0.totalLength <= bytes.count }
        let spanning = whole.filter { Int($0.lsn % size) / blockSize != (Int($0.lsn % size) + $0.totalLength - 1) / blockSize }
        #expect(spanning.count >= 3)
        let picked = Array(whole.prefix(3)) + Array(spanning.prefix(3)) + Array(whole.suffix(2))
        for record in picked {
            let at = Int(record.lsn % size)
            func expect(_ offset: Int, mask: UInt8, _ kind: WALRecordProblem.Kind, _ what: String) {
                let problem = recordProblem(name, flipped(bytes, at: offset, mask: mask))
                #expect(problem?.kind == kind, "\(what) of the record at \(formatLSN(record.lsn)): \(String(describing: problem))")
                #expect(problem?.lsn == record.lsn)
            }
            expect(offset(ofByte: 20, inRecordAt: at), mask: 0x01, .incorrectChecksum, "xl_crc")
            expect(offset(ofByte: record.totalLength - 1, inRecordAt: at), mask: 0x80, .incorrectChecksum, "the last data byte")
            expect(offset(ofByte: record.totalLength / 2 + 12, inRecordAt: at), mask: 0x08, .incorrectChecksum, "a data byte")
            let rmid = bytes[offset(ofByte: 17, inRecordAt: at)]
            expect(offset(ofByte: 17, inRecordAt: at), mask: 0x40, .invalidResourceManager(rmid ^ 0x40), "xl_rmid")
            let prevAt = offset(ofByte: 8, inRecordAt: at)
            let prev = bytes[prevAt..<(prevAt + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if offset(ofByte: 15, inRecordAt: at) - prevAt == 7 {
                expect(prevAt + 1, mask: 0x02, .incorrectPrevLink(prev ^ 0x200), "xl_prev")
            }
            let problem = recordProblem(name, flipped(bytes, at: offset(ofByte: 20, inRecordAt: at)))
            #expect(problem?.description == "incorrect resource manager data checksum in record at \(formatLSN(record.lsn))")
        }
    }

    /// One bit flipped at pseudo-random offsets of real segments: the reader finds what pg_waldump finds,
    /// at the LSN it names, and accepts what pg_waldump reads as before.
    @Test(arguments: [15, 17, 18])
    func flippedBytesAgreeWithPgWaldump(version: Int) throws {
        let wal = try RealWALCache.shared.wal(version)
        var random = SplitMix64(seed: UInt64(version))
        var found = 0, harmless = 0
        for (name, bytes, dump) in try Self.fullSegments(wal).prefix(2) {
            let reference = try walDump(wal.installation, name: name, bytes: bytes, quiet: true)
            let firstRecord = Int((dump.records.first?.lsn ?? 0) % UInt64(bytes.count))
            for _ in 0..<30 {
                let at = 40 + Int(random.next() % UInt64(bytes.count - 40))
                let mask = UInt8(1) << (random.next() % 8)
                let damaged = flipped(bytes, at: at, mask: mask)
                let theirs = try walDump(wal.installation, name: name, bytes: damaged, quiet: true)
                let ours = recordProblem(name, damaged)
                let context = "PostgreSQL \(version), \(name), byte \(at) ^ \(mask): pg_waldump \(theirs.error ?? "-"), walferry \(ours?.description ?? "-")"
                if theirs.error == reference.error {
                    harmless += 1
                    // pg_waldump reads it as before. walferry also checks what pg_waldump does not: the
                    // timeline against the name (the server's expectedTLEs), and the lengths of the
                    // continuation before the first record (pg_waldump skips it without checking).
                    if let ours {
                        let allowed = ours.kind == .unexpectedTimeline(UInt32(damaged[at - at % blockSize + 4]))
                            || (at < firstRecord && { if case .invalidContrecordLength = ours.kind { true } else { false } }())
                        #expect(allowed, "\(context)")
                    }
                } else {
                    found += 1
                    #expect(ours != nil, "\(context)")
                    // pg_waldump names the bad record or page, unless it fails before its first record.
                    if let ours, let lsn = theirs.errorLSN, theirs.error?.hasPrefix("could not find a valid record") == false,
                       ours.kind != .unexpectedTimeline(UInt32(damaged[at - at % blockSize + 4])) {
                        #expect(ours.lsn == lsn, "\(context)")
                    }
                }
            }
        }
        #expect(found >= 20, "only \(found) of the flips were damage (\(harmless) harmless)")
    }

    @Test(arguments: [15, 17, 18])
    func aPartialSegmentEndsWhereItsWALEnds(version: Int) throws {
        let wal = try RealWALCache.shared.wal(version)
        let (partialName, partial) = try #require(wal.files.first { $0.key.hasSuffix(".partial") })
        #expect(check(partialName, partial) == nil)
        // The same bytes as a complete segment: its WAL ends before the end of the file.
        let segmentName = String(partialName.prefix(24))
        let dump = try walDump(wal.installation, name: segmentName, bytes: partial, quiet: true)
        let end = try #require(recordProblem(segmentName, partial))
        #expect(end.lsn == dump.errorLSN, "\(end) / \(dump.error ?? "-")")

        // A complete segment cut short: zeros from one of its records on.
        let (name, bytes, full) = try #require(try Self.fullSegments(wal).first)
        let cut = full.records[full.records.count / 2]
        var truncated = bytes
        let at = Int(cut.lsn % UInt64(bytes.count))
        for index in at..<bytes.count { truncated[index] = 0 }
        let cutShort = recordProblem(name, truncated)
        #expect(cutShort?.kind == .invalidRecordLength(0))
        #expect(cutShort?.lsn == cut.lsn)
        #expect(check(name + ".partial", truncated) == nil)
        // ... but damage before the end, with WAL of the segment after it, is not an end.
        let early = full.records[5]
        let damaged = flipped(truncated, at: offset(ofByte: 20, inRecordAt: Int(early.lsn % UInt64(bytes.count))))
        let problem = try #require(recordProblem(name + ".partial", damaged))
        #expect(problem.kind == .incorrectChecksum)
        #expect(problem.lsn == early.lsn)
        #expect(problem.walResumesAt != nil)
    }
}
