// The differential fuzz test of the bzip2 encoder: generated inputs (random bytes, few letters, runs
// of every length, periodic patterns, WAL-like data, and mixtures of them) encoded at a random level
// with random block sizes, decoded by libbz2, compared with the input.
//
// Like CleanupDifferentialTests: fixed seeds plus fresh ones, every failure printed with its seed.
// WALFERRY_BZIP2_SEED=N reruns seed N alone; WALFERRY_BZIP2_FUZZ=N runs N fresh seeds instead of the
// default 100 (250 cases with the fixed seeds: about 4 s in a debug build).

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

/// One generated case: the input, the level, and the encoder's block capacity (nil for the level's).
func fuzzCase(seed: UInt64) -> (input: [UInt8], level: Int, blockCapacity: Int?) {
    var generator = SampleGenerator(seed: seed)
    func number(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &generator) }
    func byte() -> UInt8 { UInt8.random(in: 0...255, using: &generator) }
    let level = number(1...9)
    let target = [0, 1, number(2...10), number(10...300), number(300...5_000), number(5_000...60_000)][number(0...5)]
    // Small blocks in most cases, so that streams of several blocks and every block end are common;
    // at most about 100 blocks a case, to keep the default run short.
    var blockCapacity: Int? = switch number(0...3) {
    case 0: nil
    case 1: number(5...40)
    case 2: number(41...1_000)
    default: number(1_000...20_000)
    }
    if let capacity = blockCapacity, target / capacity > 100 { blockCapacity = target / 100 + number(0...9) }
    var input: [UInt8] = []
    while input.count < target {
        let left = target - input.count
        switch number(0...5) {
        case 0:  // random bytes
            for _ in 0..<min(left, number(1...2_000)) { input.append(byte()) }
        case 1:  // few letters
            let letters = UInt8(number(1...4))
            for _ in 0..<min(left, number(1...3_000)) { input.append(byte() % letters) }
        case 2:  // runs, around RLE1's lengths 4, 5, 255 and 256 more often than not
            let run = [number(1...8), number(250...260), number(1...2_000)][number(0...2)]
            input += repeatElement(byte(), count: min(left, run))
        case 3:  // a period of 1 to 70, sometimes with a mutation
            let unit = (0..<number(1...70)).map { _ in byte() }
            var piece = (0..<min(left, number(1...5_000))).map { unit[$0 % unit.count] }
            if !piece.isEmpty && number(0...1) == 0 { piece[number(0...(piece.count - 1))] = byte() }
            input += piece
        case 4:  // WAL-like data
            input += sampleData(count: min(left, number(1...3_000)), seed: generator.next())
        default:  // a repeat of what came before
            if input.isEmpty { continue }
            let start = number(0...(input.count - 1))
            input += input[start..<min(input.count, start + min(left, number(1...4_000)))]
        }
    }
    return (input, level, blockCapacity)
}

@Suite struct BZip2EncoderFuzzTests {
    /// Seeds that once mattered or cover a kind of input on purpose; fresh ones are added to each run.
    static let fixedSeeds: [UInt64] = Array(1...150)

    @Test func encoderOutputDecodesToTheInput() throws {
        let environment = ProcessInfo.processInfo.environment
        var seeds: [UInt64]
        if let one = environment["WALFERRY_BZIP2_SEED"].flatMap({ UInt64($0) }) {
            seeds = [one]
        } else {
            var fresh = SystemRandomNumberGenerator()
            let freshCount = environment["WALFERRY_BZIP2_FUZZ"].flatMap { Int($0) } ?? 100
            seeds = (environment["WALFERRY_BZIP2_FUZZ"] == nil ? Self.fixedSeeds : [])
                + (0..<freshCount).map { _ in fresh.next() }
        }
        var failures = 0
        var bytes = 0
        for seed in seeds {
            let (input, level, blockCapacity) = fuzzCase(seed: seed)
            bytes += input.count
            let compressed = encodeOneStream(input, level: level, blockCapacity: blockCapacity)
            var decoded: [UInt8]?
            do { decoded = try BZip2.decompress(compressed, jobs: 1) } catch {}
            if decoded != input {
                failures += 1
                Issue.record("""
                    seed \(seed) (rerun with WALFERRY_BZIP2_SEED=\(seed)): \(input.count) bytes, level \(level), \
                    block capacity \(blockCapacity.map(String.init) ?? "the level's"): \
                    \(decoded.map { "decoded to \($0.count) other bytes" } ?? "libbz2 rejected the stream")
                    """)
                if failures == 10 { break }
            }
        }
        print("bzip2 encoder fuzz: \(seeds.count) inputs, \(bytes) bytes, \(failures) failures")
    }
}
