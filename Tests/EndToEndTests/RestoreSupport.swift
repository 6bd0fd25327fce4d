// Archives and data directories for walferry-restore's CLI tests: WAL segments built byte by byte
// (a valid long page header, then a recognisable body), an identity record as walferry-archive writes
// it, and a fake data directory with pg_wal to restore into.
//
// Like the first page of a real segment (docs/server-rules.md §3), made to order: 1 MB segments keep the
// tests fast, and every field can be made wrong on purpose.

import Foundation
import Testing
import TestSupport

enum WAL {
    static let systemIdentifier: UInt64 = 7_712_740_923_202_838_945
    static let segmentSize = 1 << 20
    /// 0x100000000 / 1 MB.
    static let segmentsPerLog: UInt64 = 4096

    /// `%08X%08X%08X` for segment `number` of `timeline` with 1 MB segments.
    static func name(_ number: UInt64, timeline: UInt32 = 1) -> String {
        String(format: "%08X%08X%08X", timeline, UInt32(number / segmentsPerLog), UInt32(number % segmentsPerLog))
    }

    /// A segment whose long page header is right for `name(number, timeline)`, unless told otherwise,
    /// followed by bytes that depend on the segment.
    static func segment(_ number: UInt64, timeline: UInt32 = 1, headerTimeline: UInt32? = nil, pageAddress: UInt64? = nil,
                        systemIdentifier: UInt64 = systemIdentifier, size: Int = segmentSize, declaredSize: Int = segmentSize,
                        magic: UInt16 = 0xD110, random: Bool = false) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(size)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
        append(magic)
        append(UInt16(0x0002))
        append(headerTimeline ?? timeline)
        append(pageAddress ?? number * UInt64(segmentSize))
        append(UInt32(0))
        append(UInt32(0))
        append(systemIdentifier)
        append(UInt32(declaredSize))
        append(UInt32(8192))
        if random {
            var generator = SystemRandomNumberGenerator()
            while bytes.count + 8 <= size { append(generator.next() as UInt64) }
        } else {
            var counter = UInt32(truncatingIfNeeded: number &* 2_654_435_761)
            while bytes.count < size / 2 {
                append(counter)
                counter &+= 1
            }
        }
        bytes += [UInt8](repeating: 0, count: max(0, size - bytes.count))
        return Array(bytes.prefix(size))
    }

    static func identityText(systemIdentifier: UInt64 = systemIdentifier, segmentSize: Int = segmentSize, version: Int = 15) -> String {
        "walferry archive identity 1\nsystem identifier: \(systemIdentifier)\nwal segment size: \(segmentSize)\npostgresql version: \(version)\n"
    }
}

/// A folder with an archive (identity record included) and a data directory with pg_wal.
final class RestoreScene: @unchecked Sendable {
    // @unchecked: used by the one test that made it.
    let folder: TemporaryDirectory
    let archive: String
    let data: String
    let pgWAL: String

    init(identity: Bool = true) throws {
        folder = try TemporaryDirectory(prefix: "walferry-restore")
        archive = try folder.makeDirectory("archive")
        data = try folder.makeDirectory("data")
        pgWAL = try folder.makeDirectory("data/pg_wal")
        if identity { try writeFile(archive + "/walferry.identity", Array(WAL.identityText().utf8)) }
    }

    /// Puts segment `number` (by default a sound one) into the archive, plain or compressed with bzip2.
    @discardableResult
    func archiveSegment(_ number: UInt64, timeline: UInt32 = 1, bytes: [UInt8]? = nil, compressed: Bool = false) throws -> [UInt8] {
        let contents = bytes ?? WAL.segment(number, timeline: timeline)
        let path = archive + "/" + WAL.name(number, timeline: timeline)
        try writeFile(path, contents)
        if compressed {
            let outcome = try runProcess("/usr/bin/env", ["bzip2", "-9", path])
            guard outcome.status == 0 else { throw TestFailure("bzip2 failed: \(outcome)") }
        }
        return contents
    }

    /// Runs walferry-restore in the data directory.
    func restore(_ arguments: [String]) throws -> ProcessOutcome {
        try runTool("walferry-restore", arguments, workingDirectory: data)
    }

    /// The archive path of `name`.
    func source(_ name: String) -> String { archive + "/" + name }

    /// What pg_wal holds (nothing but what the test expects: no temporary file).
    func pgWALContents() throws -> [String] { try listDirectory(pgWAL) }

    func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    var recoveryXLOG: String { pgWAL + "/RECOVERYXLOG" }
}

/// Flips one byte of a file.
func corruptByte(_ path: String, at offset: Int) throws {
    var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[offset] ^= 0x55
    try writeFile(path, bytes)
}

