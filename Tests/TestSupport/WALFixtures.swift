// Synthetic WAL files for the CLI tests of every tool, and the archive identity record that goes with
// them: a segment whose first page carries a valid long header and whose records are sound
// (docs/server-rules.md §3 and §7), in any segment size, so that tests run on 1 MB files instead of waiting for a server to write 16 MB ones,
// and every header field can be made wrong on purpose. The end-to-end tests use real servers' WAL.

import Foundation
import WalferryCore

/// The system identifier of the synthetic segments and of the identity records that go with them.
public let testSystemIdentifier: UInt64 = 7_712_740_923_202_838_945

/// The bytes of a WAL segment named `name` (24 hex digits) as PostgreSQL 15 would write it: a long page
/// header at offset 0, then records (XLOG_NOOP, with pseudo-random data derived from `seed`, some
/// spanning pages) with their page headers and CRCs up to about 64 kB, closed by an XLOG_SWITCH record,
/// then what the server never reads: blanks with a seed-dependent word at the start of every 8 kB
/// page. As compressible as real WAL, and quick to make even in a debug build. `incompressible` fills
/// the whole segment with pseudo-random bytes instead (bzip2 then takes its time over it).
/// `headerTimeline`, `info` and `pageAddress` are the first page's (the later pages follow them).
public func syntheticSegment(name: String, systemIdentifier: UInt64 = testSystemIdentifier, segmentSize: Int = 1 << 20,
                             magic: UInt16 = 0xD110, headerTimeline: UInt32? = nil, info: UInt16 = 0x0002,
                             pageAddress: UInt64? = nil, seed: UInt64 = 1, incompressible: Bool = false) -> [UInt8] {
    let digits = Array(name.utf8.prefix(24))
    func field(_ index: Int) -> UInt64 { UInt64(String(decoding: digits[(index * 8)..<(index * 8 + 8)], as: UTF8.self), radix: 16) ?? 0 }
    let timeline = UInt32(field(0)), log = field(1), segment = field(2)
    let perLog = (UInt64(1) << 32) / UInt64(segmentSize)
    let address = pageAddress ?? (log * perLog + segment) * UInt64(segmentSize)
    let randomEnd = incompressible ? segmentSize : min(segmentSize, 64 << 10)
    let blockSize = 8192

    var bytes = [UInt8](repeating: 0x20, count: segmentSize)
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    bytes.withUnsafeMutableBytes { raw in
        for index in stride(from: 40, to: randomEnd - 7, by: 8) {
            raw.storeBytes(of: next().littleEndian, toByteOffset: index, as: UInt64.self)
        }
        for page in stride(from: randomEnd, to: segmentSize - 7, by: 8192) {
            raw.storeBytes(of: (seed &+ UInt64(page)).littleEndian, toByteOffset: page, as: UInt64.self)
        }
    }
    func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }
    put(magic, at: 0)
    put(info, at: 2)
    put(headerTimeline ?? timeline, at: 4)
    put(address, at: 8)
    put(UInt32(0), at: 16)
    put(UInt32(0), at: 20)
    put(systemIdentifier, at: 24)
    put(UInt32(segmentSize), at: 32)
    put(UInt32(blockSize), at: 36)

    // The records, laid out over the pages as the server lays them out (docs/server-rules.md §7).
    let laterTimeline = max(headerTimeline ?? timeline, timeline)
    var position = 40
    var previous = address > 40 ? address - 40 : 0
    func append(_ record: [UInt8]) {
        var written = 0
        while written < record.count {
            if position % blockSize == 0 {
                put(magic, at: position)
                put(UInt16(written > 0 ? 0x0001 : 0), at: position + 2)
                put(laterTimeline, at: position + 4)
                put(address + UInt64(position), at: position + 8)
                put(UInt32(written > 0 ? record.count - written : 0), at: position + 16)
                put(UInt32(0), at: position + 20)
                position += 24
            }
            let count = min(record.count - written, blockSize - position % blockSize)
            bytes.replaceSubrange(position..<(position + count), with: record[written..<(written + count)])
            position += count
            written += count
        }
        position = (position + 7) & ~7
    }
    func record(info: UInt8, dataLength: Int) -> [UInt8] {
        let length = 24 + dataLength
        var record = [UInt8](repeating: 0, count: length)
        record.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: previous.littleEndian, toByteOffset: 8, as: UInt64.self)
            raw[16] = info
            raw[17] = 0  // RM_XLOG_ID
            for index in 0..<dataLength { raw[24 + index] = UInt8(truncatingIfNeeded: next()) }
        }
        var crc = CRC32C()
        crc.update(record[24...])
        crc.update(record[..<20])
        record.withUnsafeMutableBytes { $0.storeBytes(of: crc.value.littleEndian, toByteOffset: 20, as: UInt32.self) }
        previous = address + UInt64(position % blockSize == 0 ? position + 24 : position)
        return record
    }
    let lengths = [40, 200, 3000, 9000, 17]
    var index = 0
    while position < min(randomEnd, segmentSize - 3 * blockSize) {
        append(record(info: 0x20, dataLength: lengths[index % lengths.count]))  // XLOG_NOOP
        index += 1
    }
    append(record(info: 0x40, dataLength: 0))  // XLOG_SWITCH: the server reads no further
    return bytes
}

/// The archive identity record (`walferry.identity`) as walferry-archive writes it.
public func identityRecordText(systemIdentifier: UInt64 = testSystemIdentifier, segmentSize: Int = 1 << 20, version: Int = 15) -> String {
    "walferry archive identity 1\nsystem identifier: \(systemIdentifier)\nwal segment size: \(segmentSize)\npostgresql version: \(version)\n"
}

/// A data directory stand-in for archive_command's working directory: `pg_wal/` with the given files,
/// plus PG_VERSION and global/pg_control so that the tools recognise it as a data directory.
public func fakeDataDirectory(in folder: TemporaryDirectory, files: [String: [UInt8]], name: String = "pgdata") throws -> String {
    let data = try folder.makeDirectory(name)
    try folder.makeDirectory(name + "/pg_wal")
    try folder.makeDirectory(name + "/global")
    try writeFile(data + "/PG_VERSION", Array("15\n".utf8))
    try writeFile(data + "/global/pg_control", [UInt8](repeating: 0, count: 8192))
    for (file, bytes) in files {
        try writeFile(data + "/pg_wal/" + file, bytes)
        chmod(data + "/pg_wal/" + file, 0o600)
    }
    return data
}

/// The contents of a file.
public func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("could not read \"\(path)\"") }
    return [UInt8](data)
}

/// The permission bits of a file.
public func fileMode(_ path: String) -> Int {
    var info = stat()
    guard stat(path, &info) == 0 else { return -1 }
    return Int(info.st_mode & 0o7777)
}

/// Whether two byte arrays are equal, compared with memcmp (Array's == is slow on 16 MB in debug builds).
public func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in
            guard let l = left.baseAddress, let r = right.baseAddress else { return true }  // both empty
            return memcmp(l, r, left.count) == 0
        }
    }
}
