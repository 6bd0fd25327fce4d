// walferry's bzip2 encoder: a piece of input into one complete bzip2 stream, as `bzip2 -c -N` writes
// it and every bzip2 decoder reads it (libbz2, bzip2, lbzip2, pbzip2, Python's bz2).
//
// Like libbz2's BZ2_bzBuffToBuffCompress, except that the block sort is libdivsufsort's
// (BZip2BlockSort.swift), the tables are refined in fewer passes (below), and all working memory
// belongs to one BZip2Encoder per worker thread, reused from stream to stream. The stages, in the
// format's order: the first run-length stage (RLE1: runs of 4 to 255 equal bytes become 4 bytes and a
// count), the block CRC, the Burrows-Wheeler transform, move-to-front with RUNA/RUNB zero runs, 2 to 6
// Huffman tables over 50-symbol groups (BZip2Huffman.swift), and the bit stream written here
// (through BZip2BitWriter.swift): block header, used-byte map, MTF-coded selectors, delta-coded code
// lengths, the symbols, and the stream trailer with the combined CRC.
//
// A block holds at most level × 100000 − 19 bytes after RLE1, as libbz2's: decoders allow level ×
// 100000. RLE1 can lengthen data (a run of exactly 4 bytes takes 5), so a piece of that many input
// bytes may need a second block in its stream; it never needs a third (5/4 × the piece < 2 blocks).
//
// Written from the format as bzip2 1.0 decoders read it. BZip2EncoderTests checks the CRC, the least
// rotation and the transform against naive versions, and the output against libbz2, bzip2, lbzip2 and
// pbzip2; BZip2EncoderFuzzTests feeds libbz2 generated inputs.

/// Refinement passes of the Huffman tables. libbz2 makes 4. Measured on the 39 segments and the tar of
/// bench/bzip2.sh's pgbench cluster (2 segments and 100 MB of the tar one by one, all segments in sum),
/// against 4 passes: 3 are 0.1 to 0.4 % bigger (0.2 % in sum), 2 are 0.4 to 1.1 % (0.6 % in sum, and
/// some OLTP segments then end over 1 % above bzip2 -9's size; 3 keep them under), 1 is 1.5 to 2.6 %.
/// A pass costs under 1 % of the encoding time (perf).
let huffmanPasses = 3

/// One thread's bzip2 encoder: working memory for the largest block of one level.
final class BZip2Encoder {
    let level: Int
    /// The most bytes a block holds after RLE1.
    let blockCapacity: Int
    private let block: UnsafeMutablePointer<UInt8>
    private let rotated: UnsafeMutablePointer<UInt8>
    /// The suffix array (an Int32 per block byte) while the block is sorted, then the move-to-front
    /// symbols (a UInt16 per block byte, and one more): the largest buffer, used twice.
    private let sortAndSymbols: UnsafeMutableRawPointer
    private let used: UnsafeMutablePointer<Bool>
    private var writer: BitWriter

    /// An encoder for streams of `level` (1 to 9). `blockCapacity`, for the tests only, makes blocks
    /// smaller than the level's, so that small inputs need several.
    init(level: Int, blockCapacity: Int? = nil) {
        precondition((1...9).contains(level))
        self.level = level
        self.blockCapacity = min(level * 100_000 - 19, max(5, blockCapacity ?? .max))
        block = .allocate(capacity: self.blockCapacity)
        rotated = .allocate(capacity: self.blockCapacity + 1)
        sortAndSymbols = .allocate(byteCount: 4 * self.blockCapacity + 4, alignment: 16)
        used = .allocate(capacity: 256)
        writer = BitWriter(capacity: 64 << 10)
    }

    deinit {
        block.deallocate()
        rotated.deallocate()
        sortAndSymbols.deallocate()
        used.deallocate()
        writer.deallocate()
    }

    /// `input` as one complete stream: "BZh" and the level, its blocks, the end-of-stream marker and
    /// the combined CRC. An empty input is a stream without blocks, as bzip2 writes it.
    func encodeStream(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        writer.reset()
        writer.reserve(64)
        writer.put(0x425A68, bits: 24)  // "BZh"
        writer.put(UInt32(0x30 + level), bits: 8)
        var combined: UInt32 = 0
        if let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self) {
            var position = 0
            while position < input.count {
                let (consumed, count) = runLengthEncode(base + position, count: input.count - position)
                let crc = BZip2CRC.checksum(base + position, count: consumed)
                position += consumed
                encodeBlock(count: count, crc: crc)
                combined = BZip2CRC.combine(combined, crc)
            }
        }
        writer.reserve(16)
        writer.put(0x177245, bits: 24)  // the end-of-stream magic, √π
        writer.put(0x385090, bits: 24)
        writer.put(combined >> 16, bits: 16)
        writer.put(combined & 0xFFFF, bits: 16)
        writer.flush()
        return writer.bytes
    }

    /// RLE1 of the input into `block`, as far as it fits; returns the input bytes consumed and the block
    /// bytes produced. A run of 4 to 255 equal bytes becomes 4 of them and a count byte (run − 4); a
    /// longer run is cut in 255-byte runs. Runs never cross blocks: the decoder starts afresh at each.
    /// The stretches between runs of 4 or more are copied as they are.
    private func runLengthEncode(_ input: UnsafePointer<UInt8>, count: Int) -> (consumed: Int, produced: Int) {
        var index = 0
        var produced = 0
        while index < count {
            let run = nextRunOfFour(input, from: index, count: count)
            let take = min(run - index, blockCapacity - produced)
            (block + produced).update(from: input + index, count: take)
            produced += take
            index += take
            if index < run || index == count { break }
            // A run of at least 4 at `index`.
            let byte = input[index]
            let end = runEnd(input, byte: byte, from: index + 4, limit: min(count, index + 255))
            if produced + 5 > blockCapacity { break }
            block[produced] = byte
            block[produced + 1] = byte
            block[produced + 2] = byte
            block[produced + 3] = byte
            block[produced + 4] = UInt8(end - index - 4)
            produced += 5
            index = end
        }
        return (index, produced)
    }

    /// One block of `count` RLE1 bytes (in `block`) whose input had the CRC `crc`.
    private func encodeBlock(count: Int, crc: UInt32) {
        // A local copy, written back at the end: a class property would be checked for exclusive
        // access at every bit written.
        var writer = self.writer
        defer { self.writer = writer }
        used.update(repeating: false, count: 256)
        let suffixes = sortAndSymbols.bindMemory(to: Int32.self, capacity: count)
        let origPtr = burrowsWheelerTransform(block, count: count, rotated: rotated, suffixes: suffixes, lastColumn: block,
                                              used: used)
        // The suffixes are done with: the same memory takes the symbols.
        let symbols = sortAndSymbols.bindMemory(to: UInt16.self, capacity: count + 1)
        let mtf = moveToFront(block, count: count, used: used, symbols: symbols)
        let tables = chooseHuffmanTables(symbols, mtf, passes: huffmanPasses)
        let alphabetSize = mtf.alphabetSize

        // Headers, maps, selectors and tables take well under 32 kB; the symbols at most 17 bits each.
        writer.reserve(32 << 10 + (mtf.count * maximumCodeLength) / 8)
        writer.put(0x314159, bits: 24)  // the block magic, π
        writer.put(0x265359, bits: 24)
        writer.put(crc >> 16, bits: 16)
        writer.put(crc & 0xFFFF, bits: 16)
        writer.put(0, bits: 1)  // not randomised
        writer.put(UInt32(origPtr), bits: 24)

        // The used bytes: which of the 16 ranges of 16 bytes hold any, then each such range's bitmap.
        var ranges: UInt32 = 0
        for range in 0..<16 where (0..<16).contains(where: { used[range * 16 + $0] }) { ranges |= 1 << (15 - range) }
        writer.put(ranges, bits: 16)
        for range in 0..<16 where ranges & (1 << (15 - range)) != 0 {
            var map: UInt32 = 0
            for byte in 0..<16 where used[range * 16 + byte] { map |= 1 << (15 - byte) }
            writer.put(map, bits: 16)
        }

        // The tables and the selectors, the latter move-to-front coded in unary.
        writer.put(UInt32(tables.tableCount), bits: 3)
        writer.put(UInt32(tables.selectors.count), bits: 15)
        var order: [UInt8] = Array(0..<UInt8(tables.tableCount))
        for selector in tables.selectors {
            var position = 0
            while order[position] != selector { position += 1 }
            order.remove(at: position)
            order.insert(selector, at: 0)
            // `position` ones and a zero.
            writer.put((UInt32(1) << (position + 1)) - 2, bits: position + 1)
        }
        // Code lengths: the first in 5 bits, then each as a change from the previous one: "10" adds
        // one, "11" takes one away, "0" ends the symbol's length.
        for table in 0..<tables.tableCount {
            var current = tables.lengths[table * alphabetSize]
            writer.put(UInt32(current), bits: 5)
            for symbol in 0..<alphabetSize {
                let length = tables.lengths[table * alphabetSize + symbol]
                while current < length {
                    writer.put(0b10, bits: 2)
                    current += 1
                }
                while current > length {
                    writer.put(0b11, bits: 2)
                    current -= 1
                }
                writer.put(0, bits: 1)
            }
        }

        // Canonical codes, as decoders assign them: by length, then by symbol. Each entry holds the
        // code above bit 5 and its length below.
        var codes = [UInt32](repeating: 0, count: tables.tableCount * alphabetSize)
        for table in 0..<tables.tableCount {
            var next: UInt32 = 0
            for length in 1...maximumCodeLength {
                for symbol in 0..<alphabetSize where Int(tables.lengths[table * alphabetSize + symbol]) == length {
                    codes[table * alphabetSize + symbol] = next << 5 | UInt32(length)
                    next += 1
                }
                next <<= 1
            }
        }
        codes.withUnsafeBufferPointer { codes in
            guard let codes = codes.baseAddress else { return }
            for (group, selector) in tables.selectors.enumerated() {
                let table = codes + Int(selector) * alphabetSize
                let start = group * 50
                for index in start..<min(mtf.count, start + 50) {
                    let entry = table[Int(symbols[index])]
                    writer.put(entry >> 5, bits: Int(entry & 31))
                }
            }
        }
    }
}

/// The first position at or after `start` where 4 equal bytes begin, or `count` if there is none.
/// Five positions a step: in a 64-bit word, byte k of `word ^ (word >> 8)` is zero where bytes k and
/// k + 1 are equal, and three such zeros in a row from byte k ≤ 4 make a run of four at k.
@inline(__always)
private func nextRunOfFour(_ input: UnsafePointer<UInt8>, from start: Int, count: Int) -> Int {
    let raw = UnsafeRawPointer(input)
    let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
    var position = start
    while position + 8 <= count {
        let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        let difference = word ^ (word >> 8)
        let equal = ~(((difference & low7) &+ low7) | difference | low7)
        let runs = equal & (equal >> 8) & (equal >> 16) & 0x0000_0080_8080_8080
        if runs != 0 { return position + runs.trailingZeroBitCount / 8 }
        position += 5
    }
    while position + 4 <= count {
        let byte = input[position]
        if input[position + 1] == byte && input[position + 2] == byte && input[position + 3] == byte { return position }
        position += 1
    }
    return count
}

/// The first position from `start` on, below `limit`, whose byte is not `byte` (or `limit`). Eight
/// bytes a step while they are all `byte`.
@inline(__always)
func runEnd(_ bytes: UnsafePointer<UInt8>, byte: UInt8, from start: Int, limit: Int) -> Int {
    let raw = UnsafeRawPointer(bytes)
    let pattern = UInt64(byte) &* 0x0101_0101_0101_0101
    var position = start
    while position + 8 <= limit {
        let difference = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)) ^ pattern
        if difference != 0 { return position + difference.trailingZeroBitCount / 8 }
        position += 8
    }
    while position < limit && bytes[position] == byte { position += 1 }
    return position
}
