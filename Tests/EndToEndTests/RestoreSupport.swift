// Archives and data directories for walferry-restore's CLI tests: numbered WAL segments (TestSupport's
// syntheticSegment, 1 MB), an identity record as walferry-archive writes it, and a fake data directory
// with pg_wal to restore into.
//
// Like ArchiveCLITests' Setup, except that segments go by number and the scene holds an archive
// already: restore reads what archive wrote.

import Foundation
import Testing
import TestSupport

/// Segments by number: 1 MB, timeline 1 unless told otherwise.
enum WAL {
    static let segmentSize = 1 << 20
    /// 0x100000000 / 1 MB.
    static let segmentsPerLog: UInt64 = 4096

    /// `%08X%08X%08X` for segment `number` of `timeline` with 1 MB segments.
    static func name(_ number: UInt64, timeline: UInt32 = 1) -> String {
        String(format: "%08X%08X%08X", timeline, UInt32(number / segmentsPerLog), UInt32(number % segmentsPerLog))
    }

    /// syntheticSegment for `name(number, timeline)`, its body seeded by `number` so that no two
    /// segments have the same contents.
    static func segment(_ number: UInt64, timeline: UInt32 = 1, headerTimeline: UInt32? = nil, pageAddress: UInt64? = nil,
                        systemIdentifier: UInt64 = testSystemIdentifier) -> [UInt8] {
        syntheticSegment(name: name(number, timeline: timeline), systemIdentifier: systemIdentifier, segmentSize: segmentSize,
                         headerTimeline: headerTimeline, pageAddress: pageAddress, seed: number)
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
        if identity { try writeFile(archive + "/walferry.identity", Array(identityRecordText().utf8)) }
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

