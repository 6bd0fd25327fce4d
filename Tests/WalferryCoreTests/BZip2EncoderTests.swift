// walferry's bzip2 encoder (BZip2Encoder.swift and the files it names): its CRC, least rotation and
// Burrows-Wheeler transform against naive versions; round trips through libbz2 and the bzip2, lbzip2
// and pbzip2 commands of random data, runs, periodic patterns, text, real WAL and a real data
// directory's tar, at every level; the block edges; and the size against libbz2's (within 1 %).
// The differential fuzz test is in BZip2EncoderFuzzTests.swift.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

/// The bzip2 commands that must read everything we write, as `command < file > output`.
let otherDecoders = ["bzip2 -dc", "lbzip2 -dc -n2", "pbzip2 -dc -p2"]

/// Checks that libbz2 (through the engine) and every command in `otherDecoders` decode `compressed`
/// to `expected`.
func expectEveryDecoderReads(_ compressed: [UInt8], as expected: [UInt8], _ label: String) throws {
    #expect(try BZip2.decompress(compressed, jobs: 2) == expected, "libbz2: \(label)")
    let folder = try TemporaryDirectory(prefix: "walferry-bzip2-encoder")
    try writeFileBytes(folder.join("in.bz2"), compressed)
    try writeFileBytes(folder.join("expected"), expected)
    for command in otherDecoders {
        let outcome = try shell("\(command) < \(folder.join("in.bz2")) > \(folder.join("out")) && cmp \(folder.join("out")) \(folder.join("expected"))")
        #expect(outcome.status == 0, "\(command): \(label): \(outcome.stderr)")
    }
}

/// One stream of `input` from the encoder alone (no engine), with blocks of at most `blockCapacity`.
func encodeOneStream(_ input: [UInt8], level: Int = 9, blockCapacity: Int? = nil) -> [UInt8] {
    let encoder = BZip2Encoder(level: level, blockCapacity: blockCapacity)
    return input.withUnsafeBytes { encoder.encodeStream($0) }
}

/// `count` bytes of `pattern` repeated.
func repeating(_ pattern: [UInt8], count: Int) -> [UInt8] {
    (0..<count).map { pattern[$0 % pattern.count] }
}

/// Random bytes from `seed`.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SampleGenerator(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

@Suite struct BZip2EncoderTests {
    // MARK: - The stages against naive versions

    @Test func crcIsBzip2sCRC32() {
        // CRC-32/BZIP2's check value, and the combined CRC of one block is that block's CRC.
        let check = Array("123456789".utf8)
        #expect(check.withUnsafeBufferPointer { BZip2CRC.checksum($0.baseAddress!, count: $0.count) } == 0xFC89_1918)
        #expect(BZip2CRC.combine(0, 0xFC89_1918) == 0xFC89_1918)
        #expect(BZip2CRC.combine(0x8000_0001, 0) == 0x0000_0003)
        // Eight bytes a step agrees with one byte a step at every length and alignment.
        let bytes = randomBytes(300, seed: 1)
        for start in 0..<9 {
            for count in 0..<(bytes.count - start) {
                var register: UInt32 = 0xFFFF_FFFF
                for byte in bytes[start..<(start + count)] {
                    register = (register << 8) ^ BZip2CRC.tables[Int((register >> 24) ^ UInt32(byte))]
                }
                let fast = bytes.withUnsafeBufferPointer { BZip2CRC.checksum($0.baseAddress! + start, count: count) }
                #expect(fast == ~register, "start \(start), count \(count)")
            }
        }
    }

    /// Small strings over 1 to 3 letters (periodic ones among them), and random ones.
    static func smallStrings() -> [[UInt8]] {
        var strings: [[UInt8]] = [[7], [1, 1], [2, 1], [0, 0, 0, 0, 0], [1, 2, 1, 2, 1, 2], [3, 1, 2, 3, 1, 2], Array("banana".utf8),
                                  Array("abracadabra".utf8), Array("mississippi".utf8)]
        var generator = SampleGenerator(seed: 2)
        for _ in 0..<400 {
            let count = Int.random(in: 1...40, using: &generator)
            let letters = UInt8.random(in: 1...3, using: &generator)
            strings.append((0..<count).map { _ in UInt8.random(in: 0..<letters, using: &generator) })
        }
        for period in 1...6 {
            let unit = (0..<period).map { _ in UInt8.random(in: 0...1, using: &generator) }
            strings.append(repeating(unit, count: period * Int.random(in: 2...7, using: &generator)))
        }
        return strings
    }

    static func rotation(_ bytes: [UInt8], _ start: Int) -> [UInt8] { Array(bytes[start...] + bytes[..<start]) }

    @Test func leastRotationMatchesBruteForce() {
        for string in Self.smallStrings() {
            let rotations = (0..<string.count).map { Self.rotation(string, $0) }
            let least = rotations.min { $0.lexicographicallyPrecedes($1) } ?? []
            let expected = rotations.firstIndex(of: least) ?? -1
            #expect(string.withUnsafeBufferPointer { leastRotation($0.baseAddress!, count: $0.count) } == expected, "\(string)")
        }
    }

    /// The transform equals the last column of the sorted rotations, and origPtr names a row that is
    /// the block itself.
    @Test func transformMatchesSortedRotations() {
        for string in Self.smallStrings() + [randomBytes(2_000, seed: 3), repeating([0], count: 1_000)] {
            let count = string.count
            let sorted = (0..<count).map { Self.rotation(string, $0) }.sorted { $0.lexicographicallyPrecedes($1) }
            var lastColumn = [UInt8](repeating: 0, count: count)
            var rotated = [UInt8](repeating: 0, count: count + 1)
            var suffixes = [Int32](repeating: 0, count: count)
            var used = [Bool](repeating: false, count: 256)
            let origPtr = string.withUnsafeBufferPointer { block in
                burrowsWheelerTransform(block.baseAddress!, count: count, rotated: &rotated, suffixes: &suffixes, lastColumn: &lastColumn,
                                        used: &used)
            }
            #expect(lastColumn == sorted.map { $0[count - 1] }, "\(string.prefix(50))")
            #expect(used == (0..<256).map { string.contains(UInt8($0)) }, "\(string.prefix(50))")
            #expect(sorted.indices.contains(origPtr) && sorted[origPtr] == string, "\(string.prefix(50)): origPtr \(origPtr)")
        }
    }

    // MARK: - Round trips through every decoder

    static let texts: [(String, [UInt8])] = [
        ("random", randomBytes(700_000, seed: 4)),
        ("all zeros", [UInt8](repeating: 0, count: 2_000_000)),
        ("one byte repeated", [UInt8](repeating: 0xA7, count: 1_000_001)),
        ("two bytes alternating", repeating([0x55, 0xAA], count: 333_333)),
        ("text", repeating(Array("It was the best of times, it was the worst of times; \n".utf8), count: 10_000)
            + Array(String(repeating: "walferry archives WAL segments, ", count: 5_000).utf8)),
        ("WAL-like sample data", sampleData(count: 1_500_000, seed: 5)),
        ("synthetic WAL segment", syntheticSegment(name: "000000010000000000000003", segmentSize: 16 << 20)),
    ]

    @Test(arguments: 0..<texts.count)
    func roundTripThroughEveryDecoder(index: Int) throws {
        let (label, input) = Self.texts[index]
        let compressed = try BZip2.compress(input, level: 9, jobs: 2)
        try expectEveryDecoderReads(compressed, as: input, label)
    }

    /// Every period from 1 to 64, each 150 kB (two level-1 blocks), random units: one multi-stream
    /// file per decoder run.
    @Test func periodicPatterns() throws {
        var all: [UInt8] = []
        var compressed: [UInt8] = []
        var generator = SampleGenerator(seed: 6)
        for period in 1...64 {
            let unit = (0..<period).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let input = repeating(unit, count: 150_000 + period)
            all += input
            compressed += try BZip2.compress(input, level: 1, jobs: 2)
        }
        try expectEveryDecoderReads(compressed, as: all, "periods 1 to 64")
    }

    @Test(arguments: 1...9)
    func everyLevel(level: Int) throws {
        let input = sampleData(count: level * 100_000 * 2 + 12_345, seed: UInt64(100 + level))
        let compressed = try BZip2.compress(input, level: level, jobs: 2)
        #expect(compressed[3] == UInt8(0x30 + level))
        try expectEveryDecoderReads(compressed, as: input, "level \(level)")
    }

    /// A real WAL segment and a real data directory, from initdb (PostgreSQL's bootstrap writes both).
    @Test func realWALAndDataDirectoryTar() throws {
        let cluster = try PostgresCluster(installation: .system(), name: "bzip2-encoder")
        let segment = try readFileBytes(cluster.dataDirectory + "/pg_wal/000000010000000000000001")
        #expect(segment.count == 16 << 20)
        try expectEveryDecoderReads(try BZip2.compress(segment, level: 9, jobs: 2), as: segment, "initdb's WAL segment")
        try expectSizeCloseToLibbz2s(segment, "initdb's WAL segment")

        let tar = cluster.folder.join("data.tar")
        try mustRun("tar -C \(cluster.folder.path) --exclude='data/pg_wal/0*' -cf \(tar) data")
        let bytes = try readFileBytes(tar)
        #expect(bytes.count > 10_000_000)
        try expectEveryDecoderReads(try BZip2.compress(bytes, level: 9, jobs: 2), as: bytes, "data directory tar")
        try expectSizeCloseToLibbz2s(bytes, "data directory tar")
    }

    // MARK: - Edges

    @Test func edgeSizes() throws {
        let capacity = 99_981  // level 1
        let data = sampleData(count: 2 * capacity + 2, seed: 7)
        for size in [0, 1, 2, 3, 4, 5, capacity - 1, capacity, capacity + 1, 2 * capacity, 2 * capacity + 1] {
            let input = Array(data[..<size])
            let compressed = try BZip2.compress(input, level: 1, jobs: 2)
            #expect(streamStarts(compressed).count == max(1, (size + capacity - 1) / capacity), "size \(size)")
            try expectEveryDecoderReads(compressed, as: input, "size \(size)")
        }
    }

    /// Runs of 4, 5, 255 and 256 equal bytes placed across the engine's cut between streams (level 1:
    /// every 99981 bytes) at every offset near it, and across the encoder's own block ends inside a
    /// stream (small blocks, so that the runs meet every position of a block end).
    @Test(arguments: [4, 5, 255, 256])
    func runsAcrossBlockBoundaries(run: Int) throws {
        let capacity = 99_981
        let filler = randomBytes(2 * capacity, seed: UInt64(run))
        var all: [UInt8] = []
        var compressed: [UInt8] = []
        for before in Set([0, 1, 2, 3, 4, 5, run / 2, run - 1, run]) where before <= run {
            var input = filler
            for index in (capacity - before)..<(capacity - before + run) { input[index] = 0x42 }
            all += input
            compressed += try BZip2.compress(input, level: 1, jobs: 2)
        }
        for blockCapacity in [5, 6, 7, 8, 9, 10, 13, 64, 255, 256, 257, 300] {
            let input = repeating([0x61], count: run) + repeating([0x62, 0x62, 0x63], count: 7) + repeating([0x64], count: run)
                + randomBytes(50, seed: 8) + repeating([0x65], count: run)
            all += input
            compressed += encodeOneStream(input, level: 1, blockCapacity: blockCapacity)
        }
        try expectEveryDecoderReads(compressed, as: all, "runs of \(run)")
    }

    /// Runs of exactly 4 take 5 bytes after RLE1: this full piece becomes 11/9 of a block, so two
    /// blocks, in one stream.
    @Test func lengtheningInputTakesTwoBlocksInOneStream() throws {
        for level in [1, 2, 9] {
            let input = repeating([9, 9, 9, 9, 1, 1, 1, 1, 4], count: level * 100_000 - 19)
            let compressed = try BZip2.compress(input, level: level, jobs: 2)
            #expect(streamStarts(compressed).count == 1, "level \(level)")
            try expectEveryDecoderReads(compressed, as: input, "level \(level)")
        }
    }

    // MARK: - Size

    /// Within 1 % of libbz2's output for the same pieces, on WAL-like data, text and a WAL segment.
    @Test func sizeCloseToLibbz2s() throws {
        for (label, input) in Self.texts where label != "random" {
            try expectSizeCloseToLibbz2s(input, label)
        }
    }
}

/// Checks that the engine's output for `input` at level 9 is within 1 % of libbz2's for the same
/// pieces (plus 100 bytes, for inputs that compress to almost nothing).
func expectSizeCloseToLibbz2s(_ input: [UInt8], _ label: String) throws {
    let ours = try BZip2.compress(input, level: 9, jobs: 2)
    var reference = 0
    let memory = BZ2Memory()
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: compressedSizeBound(899_981), alignment: 16)
    defer { scratch.deallocate() }
    for start in stride(from: 0, to: input.count, by: 899_981) {
        let piece = Array(input[start..<min(input.count, start + 899_981)])
        reference += try piece.withUnsafeBytes { try libbz2CompressStream($0, level: 9, memory: memory, scratch: scratch) }.count
    }
    print("bzip2 encoder size: \(label): ours \(ours.count), libbz2 \(reference)")
    #expect(Double(ours.count) <= Double(reference) * 1.01 + 100, "\(label): ours \(ours.count), libbz2 \(reference)")
}
