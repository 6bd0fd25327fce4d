// The parallel bzip2 engine: round trips at every level and at block boundaries, one-byte reads and
// writes, interoperability with the bzip2, lbzip2 and pbzip2 commands, multi-stream input, false
// stream boundaries, and the exact error for every kind of bad input and every libbz2 code.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

@Suite struct BZip2Tests {
    // MARK: - libbz2 codes and messages

    /// Every BZ_* code of bzlib.h (by number: tests do not import libbz2) and what it becomes.
    @Test func everyLibbz2CodeMapsToItsError() {
        let expected: [(code: Int32, error: BZip2Error?)] = [
            (0, nil),  // BZ_OK
            (1, nil),  // BZ_RUN_OK
            (2, nil),  // BZ_FLUSH_OK
            (3, nil),  // BZ_FINISH_OK
            (4, nil),  // BZ_STREAM_END
            (-1, .library(code: -1)),  // BZ_SEQUENCE_ERROR
            (-2, .library(code: -2)),  // BZ_PARAM_ERROR
            (-3, .outOfMemory),  // BZ_MEM_ERROR
            (-4, .corrupt),  // BZ_DATA_ERROR
            (-5, .notBZip2),  // BZ_DATA_ERROR_MAGIC
            (-6, .library(code: -6)),  // BZ_IO_ERROR
            (-7, .truncated),  // BZ_UNEXPECTED_EOF
            (-8, .library(code: -8)),  // BZ_OUTBUFF_FULL
            (-9, .library(code: -9)),  // BZ_CONFIG_ERROR
            (-42, .library(code: -42)),  // not a libbz2 code
        ]
        for (code, error) in expected {
            #expect(BZip2Error(libbz2: code) == error, "code \(code)")
        }
    }

    @Test func everyErrorHasItsText() {
        let texts: [(BZip2Error, String)] = [
            (.truncated, "compressed data is truncated"),
            (.trailingGarbage, "trailing garbage after the compressed data"),
            (.corrupt, "compressed data is corrupt (CRC mismatch or invalid block)"),
            (.notBZip2, "compressed data is not in bzip2 format"),
            (.outOfMemory, "out of memory in libbz2"),
            (.read(Errno(EIO)), "could not read input: Input/output error"),
            (.write(Errno(ENOSPC)), "could not write output: No space left on device"),
            (.threadStart(Errno(EAGAIN)), "could not start a bzip2 worker thread: Resource temporarily unavailable"),
            (.invalidLevel(10), "invalid bzip2 compression level 10: must be between 1 and 9"),
            (.invalidJobs(0), "invalid number of bzip2 jobs 0: must be at least 1"),
            (.library(code: -1), "unexpected libbz2 result BZ_SEQUENCE_ERROR (-1)"),
            (.library(code: -2), "unexpected libbz2 result BZ_PARAM_ERROR (-2)"),
            (.library(code: -6), "unexpected libbz2 result BZ_IO_ERROR (-6)"),
            (.library(code: -8), "unexpected libbz2 result BZ_OUTBUFF_FULL (-8)"),
            (.library(code: -9), "unexpected libbz2 result BZ_CONFIG_ERROR (-9)"),
            (.library(code: 0), "unexpected libbz2 result BZ_OK (0)"),
            (.library(code: -42), "unexpected libbz2 result unknown code (-42)"),
        ]
        for (error, text) in texts {
            #expect(error.description == text)
        }
    }

    @Test func libbz2IsTheExpectedVersion() {
        #expect(libbz2Version().hasPrefix("1.0."))
    }

    // MARK: - Round trips

    /// Sizes around libbz2's block capacity (level×100000 − 19) and around the level's nominal size.
    static func boundarySizes(level: Int) -> [Int] {
        let nominal = level * 100_000
        let capacity = nominal - 19
        return [0, 1, capacity - 1, capacity, capacity + 1, nominal - 1, nominal, nominal + 1, 2 * capacity + 7]
    }

    @Test(arguments: 1...9)
    func roundTripAtBlockBoundaries(level: Int) throws {
        let data = sampleData(count: 2 * level * 100_000 + 100, seed: UInt64(level))
        for size in Self.boundarySizes(level: level) {
            let input = Array(data[..<size])
            let compressed = try BZip2.compress(input, level: level, jobs: 2)
            #expect(compressed.count > 0)
            // One stream per started block, and at least one for an empty input.
            let blockCapacity = level * 100_000 - 19
            #expect(streamStarts(compressed).count == max(1, (size + blockCapacity - 1) / blockCapacity), "size \(size)")
            #expect(try BZip2.decompress(compressed, jobs: 2) == input, "level \(level), size \(size)")
        }
    }

    /// 20 MB (23 blocks at level 9, 200 at level 1) through files, at every level.
    @Test(arguments: 1...9)
    func roundTripLargeInput(level: Int) throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        let input = Self.large
        try writeFileBytes(folder.join("in"), input)
        let totals = try compressFile(folder.join("in"), folder.join("in.bz2"), level: level, jobs: 2)
        #expect(totals.bytesIn == UInt64(input.count))
        let compressed = try readFileBytes(folder.join("in.bz2"))
        #expect(totals.bytesOut == UInt64(compressed.count))
        #expect(compressed.count < input.count / 2)
        let back = try decompressFile(folder.join("in.bz2"), folder.join("out"), jobs: 2)
        #expect(back == (UInt64(compressed.count), UInt64(input.count)))
        #expect(try readFileBytes(folder.join("out")) == input)
    }

    static let large = sampleData(count: 20_000_000, seed: 20)

    /// The output is the same whatever the number of threads, and is exactly the concatenation of each
    /// block compressed alone.
    @Test func outputIsBlockStreamsInInputOrder() throws {
        let input = sampleData(count: 350_000, seed: 3)
        let one = try BZip2.compress(input, level: 1, jobs: 1)
        #expect(try BZip2.compress(input, level: 1, jobs: 3) == one)
        var expected: [UInt8] = []
        for start in stride(from: 0, to: input.count, by: 99_981) {
            expected += try BZip2.compress(Array(input[start..<min(input.count, start + 99_981)]), level: 1, jobs: 1)
        }
        #expect(one == expected)
        #expect(streamStarts(one).count == 4)
    }

    @Test func emptyInputIsOneEmptyStreamAsBzip2WritesIt() throws {
        // "BZh9", the end-of-stream magic, and a combined CRC of 0.
        let expected: [UInt8] = [0x42, 0x5A, 0x68, 0x39, 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0, 0, 0, 0]
        #expect(try BZip2.compress([]) == expected)
        #expect(try BZip2.decompress(expected) == [])
    }

    // MARK: - One byte at a time

    /// Input through a pipe written one byte at a time, read(2) and write(2) one byte per call, and a
    /// one-byte output buffer for libbz2 in the in-order decoder.
    @Test func oneByteReadsAndWritesThroughPipes() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        let input = sampleData(count: 30_000, seed: 4)
        var tuning = BZip2Tuning()
        tuning.ioChunk = 1
        tuning.blockSize = 7_000  // five streams

        let compressIn = try pipeFeeding(input, chunk: 1)
        defer { closePipe(compressIn) }
        let compressedFD = try openFile(folder.join("in.bz2"), forWriting: true)
        var seen: [UInt8] = []
        let totals = try BZip2.compress(from: compressIn, to: compressedFD, level: 9, jobs: 2, tuning: tuning) { seen += $0 }
        close(compressedFD)
        #expect(seen == input)
        #expect(totals.bytesIn == UInt64(input.count))
        let compressed = try readFileBytes(folder.join("in.bz2"))
        #expect(streamStarts(compressed).count == 5)
        #expect(try BZip2.compress(input, level: 9, jobs: 2, tuning: tuning) == compressed)

        // Once with speculation and once with pieces too large to speculate on: the in-order decoder
        // then sees every byte with a one-byte output buffer.
        for maxPieceOutput in [1 << 20, 1] {
            tuning.maxPieceOutput = maxPieceOutput
            let decompressIn = try pipeFeeding(compressed, chunk: 1)
            defer { closePipe(decompressIn) }
            let outputFD = try openFile(folder.join("out"), forWriting: true)
            var decoded: [UInt8] = []
            _ = try BZip2.decompress(from: decompressIn, to: outputFD, jobs: 2, tuning: tuning) { decoded += $0 }
            close(outputFD)
            #expect(decoded == input)
            #expect(try readFileBytes(folder.join("out")) == input)
        }
    }

    // MARK: - Other programs

    /// Our output read by bzip2 (libbz2's own reader, which is what `tar -xj` runs), lbzip2 and
    /// pbzip2.
    @Test(arguments: ["bzip2 -dc", "lbzip2 -dc -n2", "pbzip2 -dc -p2"])
    func othersReadOurOutput(command: String) throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        let input = sampleData(count: 2_000_000, seed: 5)
        try writeFileBytes(folder.join("in"), input)
        try compressFile(folder.join("in"), folder.join("in.bz2"), level: 9, jobs: 2)
        try mustRun("\(command) < \(folder.join("in.bz2")) > \(folder.join("out"))")
        #expect(try readFileBytes(folder.join("out")) == input)
    }

    /// Files written by bzip2 (one stream), lbzip2 (one stream, its own encoder) and pbzip2 (one stream
    /// per block), at two levels, read by us.
    @Test(arguments: ["bzip2 -9", "bzip2 -1", "lbzip2 -9 -n2", "lbzip2 -1 -n2", "pbzip2 -9 -p2", "pbzip2 -1 -p2"])
    func weReadOthersOutput(command: String) throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        let input = sampleData(count: 2_500_000, seed: 6)
        try writeFileBytes(folder.join("in"), input)
        try mustRun("\(command) -c < \(folder.join("in")) > \(folder.join("in.bz2"))")
        for jobs in [1, 2] {
            try decompressFile(folder.join("in.bz2"), folder.join("out"), jobs: jobs)
            #expect(try readFileBytes(folder.join("out")) == input, "jobs \(jobs)")
        }
        // Small reads, forced cuts inside long streams, and false boundaries on top.
        var tuning = BZip2Tuning()
        tuning.ioChunk = 3_000
        tuning.maxPieceSize = 10_000
        tuning.falseBoundaryInterval = 501
        try decompressFile(folder.join("in.bz2"), folder.join("out"), jobs: 2, tuning: tuning)
        #expect(try readFileBytes(folder.join("out")) == input, "small pieces")
    }

    /// `cat a.bz2 b.bz2 c.bz2` from different programs, with an empty stream in the middle.
    @Test func concatenatedFilesAreOneInput() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        let parts = [sampleData(count: 1_200_000, seed: 7), [], sampleData(count: 300_000, seed: 8), sampleData(count: 5, seed: 9)]
        let commands = ["bzip2 -9", "bzip2 -9", "lbzip2 -n2", "ours"]
        var files: [String] = []
        for (index, (part, command)) in zip(parts, commands).enumerated() {
            let plain = folder.join("part\(index)")
            try writeFileBytes(plain, part)
            if command == "ours" {
                try compressFile(plain, plain + ".bz2", level: 2)
            } else {
                try mustRun("\(command) -c < \(plain) > \(plain).bz2")
            }
            files.append(plain + ".bz2")
        }
        try mustRun("cat \(files.joined(separator: " ")) > \(folder.join("all.bz2"))")
        try decompressFile(folder.join("all.bz2"), folder.join("out"))
        #expect(try readFileBytes(folder.join("out")) == parts.flatMap { $0 })
    }

    // MARK: - Speculation must never change the output

    /// Pieces cut at false boundaries (every 997th byte), pieces cut because they grew too long, and
    /// pieces that decode to more than a worker keeps: the output stays exact.
    @Test(arguments: [(997, 1 << 21, 1 << 22), (nil, 4_096, 1 << 22), (nil, 1 << 21, 10_000), (313, 50_000, 50_000)])
    func falseAndForcedSplitsGiveTheSameOutput(falseEvery: Int?, maxPieceSize: Int, maxPieceOutput: Int) throws {
        var tuning = BZip2Tuning()
        tuning.falseBoundaryInterval = falseEvery
        tuning.maxPieceSize = maxPieceSize
        tuning.maxPieceOutput = maxPieceOutput
        tuning.ioChunk = 5_000
        let input = sampleData(count: 400_000, seed: 10)
        var compressionTuning = BZip2Tuning()
        compressionTuning.blockSize = 30_000
        let ours = try BZip2.compress(input, level: 9, jobs: 2, tuning: compressionTuning)
        #expect(try BZip2.decompress(ours, jobs: 2, tuning: tuning) == input)
        #expect(try BZip2.decompress(ours, jobs: 1, tuning: tuning) == input)
    }

    /// Every byte of the compressed data a possible stream start: 1-byte pieces, nearly all of them
    /// false, and the output still exact.
    @Test func everyByteAFalseBoundary() throws {
        let input = sampleData(count: 60_000, seed: 11)
        var compressionTuning = BZip2Tuning()
        compressionTuning.blockSize = 9_000
        let compressed = try BZip2.compress(input, level: 9, jobs: 2, tuning: compressionTuning)
        var tuning = BZip2Tuning()
        tuning.falseBoundaryInterval = 1
        #expect(try BZip2.decompress(compressed, jobs: 2, tuning: tuning) == input)
    }

    // MARK: - Bad input

    static let multiStream: [UInt8] = {
        var tuning = BZip2Tuning()
        tuning.blockSize = 40_000
        return (try? BZip2.compress(sampleData(count: 200_000, seed: 12), level: 9, jobs: 2, tuning: tuning)) ?? []
    }()

    static let multiStreamPlain = sampleData(count: 200_000, seed: 12)

    @Test func emptyInputIsTruncated() {
        #expect(throws: BZip2Error.truncated) { _ = try BZip2.decompress([]) }
    }

    /// Cut at many points, none of them between two streams (there the file is shorter but valid, as
    /// with bzip2 itself): always `truncated`, with one thread or two, whatever the piece sizes.
    @Test func truncationAnywhereIsReported() throws {
        let compressed = Self.multiStream
        #expect(try BZip2.decompress(compressed) == Self.multiStreamPlain)
        let boundaries = Set(streamStarts(compressed))
        #expect(boundaries.count == 5)
        var cuts = [1, 2, 3, 4, 5, 10, 13, 14, 100, compressed.count / 2, compressed.count - 5, compressed.count - 1]
        for start in boundaries where start > 0 { cuts += [start - 1, start + 1, start + 4, start + 10] }
        for cut in cuts where !boundaries.contains(cut) {
            let prefix = Array(compressed[..<cut])
            for jobs in [1, 2] {
                #expect(throws: BZip2Error.truncated, "cut at \(cut), jobs \(jobs)") { _ = try BZip2.decompress(prefix, jobs: jobs) }
            }
        }
    }

    @Test func flippedBitIsCorrupt() throws {
        let compressed = Self.multiStream
        let starts = streamStarts(compressed)
        // The middle of the first stream, of the third stream, and the last stream's CRC (the last byte
        // may hold padding bits, which no decoder checks).
        for position in [starts[1] / 2, (starts[2] + starts[3]) / 2, compressed.count - 2] {
            for bit in [0, 3, 7] {
                var damaged = compressed
                damaged[position] ^= 1 << bit
                for jobs in [1, 2] {
                    #expect(throws: BZip2Error.corrupt,
                            "byte \(position), bit \(bit), jobs \(jobs)") { _ = try BZip2.decompress(damaged, jobs: jobs) }
                }
            }
        }
    }

    @Test(arguments: [[UInt8](repeating: 0, count: 1), [0, 0, 0, 0, 0, 0, 0, 0], Array("garbage\n".utf8),
                      Array("BZh0".utf8) + [UInt8](repeating: 0x55, count: 40)])
    func trailingGarbageIsRejected(garbage: [UInt8]) throws {
        for jobs in [1, 2] {
            #expect(throws: BZip2Error.trailingGarbage) { _ = try BZip2.decompress(Self.multiStream + garbage, jobs: jobs) }
        }
        // Also through a file, where the garbage arrives in a read of its own.
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        try writeFileBytes(folder.join("in.bz2"), Self.multiStream + garbage)
        var tuning = BZip2Tuning()
        tuning.ioChunk = Self.multiStream.count
        #expect(throws: BZip2Error.trailingGarbage) { try decompressFile(folder.join("in.bz2"), folder.join("out"), tuning: tuning) }
    }

    /// A valid header followed by anything else is a damaged stream, not garbage.
    @Test func fakeStreamAfterTheLastIsCorrupt() {
        let fake: [UInt8] = [0x42, 0x5A, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59] + [UInt8](repeating: 0xA5, count: 64)
        #expect(throws: BZip2Error.corrupt) { _ = try BZip2.decompress(Self.multiStream + fake) }
    }

    @Test(arguments: [Array("hello, world\n".utf8), [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    func otherDataIsNotBZip2(input: [UInt8]) {
        #expect(throws: BZip2Error.notBZip2) { _ = try BZip2.decompress(input) }
    }

    // MARK: - Arguments and system errors

    @Test func badArgumentsAreErrors() {
        #expect(throws: BZip2Error.invalidLevel(0)) { _ = try BZip2.compress([1], level: 0) }
        #expect(throws: BZip2Error.invalidLevel(10)) { _ = try BZip2.compress([1], level: 10) }
        #expect(throws: BZip2Error.invalidJobs(0)) { _ = try BZip2.compress([1], jobs: 0) }
        #expect(throws: BZip2Error.invalidJobs(-1)) { _ = try BZip2.decompress(Self.multiStream, jobs: -1) }
    }

    @Test func readAndWriteErrorsCarryTheErrno() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        try writeFileBytes(folder.join("in.bz2"), Self.multiStream)
        let full = try openFile("/dev/full", forWriting: true)
        defer { close(full) }
        let input = try openFile(folder.join("in.bz2"))
        defer { close(input) }
        #expect(throws: BZip2Error.write(Errno(ENOSPC))) { try BZip2.decompress(from: input, to: full, jobs: 2) }
        #expect(throws: BZip2Error.write(Errno(ENOSPC))) { try BZip2.compress(from: input, to: full, jobs: 2) }

        // Reading from a descriptor open for writing only.
        let writeOnly = try openFile(folder.join("other"), forWriting: true)
        defer { close(writeOnly) }
        let output = try openFile(folder.join("out"), forWriting: true)
        defer { close(output) }
        #expect(throws: BZip2Error.read(Errno(EBADF))) { try BZip2.compress(from: writeOnly, to: output, jobs: 2) }
        #expect(throws: BZip2Error.read(Errno(EBADF))) { try BZip2.decompress(from: writeOnly, to: output, jobs: 2) }
    }

    /// The callback sees exactly the uncompressed bytes, in order, both ways.
    @Test func onBlockSeesTheUncompressedBytesInOrder() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-bzip2")
        let input = sampleData(count: 2_100_000, seed: 13)
        try writeFileBytes(folder.join("in"), input)
        let inputFD = try openFile(folder.join("in"))
        let compressedFD = try openFile(folder.join("in.bz2"), forWriting: true)
        var seen: [UInt8] = []
        var calls = 0
        try BZip2.compress(from: inputFD, to: compressedFD, level: 9, jobs: 2) { seen += $0; calls += 1 }
        close(inputFD)
        close(compressedFD)
        #expect(seen == input)
        #expect(calls == 3)

        seen = []
        let readFD = try openFile(folder.join("in.bz2"))
        let outputFD = try openFile(folder.join("out"), forWriting: true)
        try BZip2.decompress(from: readFD, to: outputFD, jobs: 2) { seen += $0 }
        close(readFD)
        close(outputFD)
        #expect(seen == input)
    }
}
