// The entropy coding stages of a bzip2 block: move-to-front with zero runs coded as RUNA/RUNB, and
// the choice of 2 to 6 Huffman tables over groups of 50 symbols.
//
// Like libbz2's generateMTFValues and sendMTFValues (the table-choosing half), except that the cost of
// a group under every table is one 64-bit addition per symbol (six 10-bit lanes, one per table), and
// that the number of refinement passes is a parameter (libbz2 makes 4; BZip2Encoder says how many we
// make and why). The bit layout of the tables and selectors is in BZip2Encoder.swift.

/// The symbols of a block after move-to-front: 0 and 1 are RUNA and RUNB, `k + 1` is the byte at
/// position k ≥ 1 of the move-to-front list, and `alphabetSize - 1` ends the block.
struct MoveToFrontOutput {
    var count = 0
    var alphabetSize = 0
    /// How often each symbol occurs, for the first table partition.
    var frequencies = [Int32](repeating: 0, count: 258)
}

/// Move-to-front and zero-run coding of `count` bytes of the transform's last column, whose distinct
/// bytes are the `used` ones, into `symbols` (at least count + 1 entries).
func moveToFront(_ lastColumn: UnsafePointer<UInt8>, count: Int, used: UnsafePointer<Bool>,
                 symbols: UnsafeMutablePointer<UInt16>) -> MoveToFrontOutput {
    var output = MoveToFrontOutput()
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 264) { memory in
        guard let memory = memory.baseAddress else { return }
        // The list starts with the used bytes in increasing order, as the decoder numbers them, then
        // the others, which never move, so that a byte's place in it is its place among the used
        // bytes; then 8 bytes of padding, so that it can be read a 64-bit word at a time.
        let list = memory
        var usedCount = 0
        for byte in 0..<256 where used[byte] {
            list[usedCount] = UInt8(truncatingIfNeeded: byte)
            usedCount += 1
        }
        var unused = usedCount
        for byte in 0..<256 where !used[byte] {
            list[unused] = UInt8(truncatingIfNeeded: byte)
            unused += 1
        }
        (list + 256).update(repeating: 0, count: 8)
        let words = UnsafeMutableRawPointer(list)
        output.alphabetSize = usedCount + 2
        output.frequencies.withUnsafeMutableBufferPointer { frequencies in
            guard let frequencies = frequencies.baseAddress else { return }
            var produced = 0
            var zeros = 0
            var index = 0
            while index < count {
                let byte = lastColumn[index]
                if list[0] == byte {
                    // A run of the front byte: all move-to-front zeros.
                    let end = runEnd(lastColumn, byte: byte, from: index + 1, limit: count)
                    zeros += end - index
                    index = end
                    continue
                }
                index += 1
                if zeros > 0 {
                    produced = putZeroRun(zeros, symbols: symbols, at: produced, frequencies: frequencies)
                    zeros = 0
                }
                let position: Int
                if list[1] == byte {
                    list[1] = list[0]
                    list[0] = byte
                    position = 1
                } else {
                    position = moveToFront(byte, in: words)
                }
                symbols[produced] = UInt16(position + 1)
                frequencies[position + 1] += 1
                produced += 1
            }
            if zeros > 0 { produced = putZeroRun(zeros, symbols: symbols, at: produced, frequencies: frequencies) }
            symbols[produced] = UInt16(usedCount + 1)
            frequencies[usedCount + 1] += 1
            output.count = produced + 1
        }
    }
    return output
}

/// Finds `byte` in the list at `words` (at least 8 bytes past it readable), moves it to the front, the
/// bytes before it one place back, and returns where it was. Eight bytes a step: a word holding the
/// byte is found with the exact zero-byte test on the word XOR the byte repeated, and each word is
/// shifted up by one byte with the top byte of the word before carried into it.
@inline(__always)
private func moveToFront(_ byte: UInt8, in words: UnsafeMutableRawPointer) -> Int {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
    let pattern = UInt64(byte) &* ones
    var carry = UInt64(byte)  // what goes into byte 0 of the next word
    var offset = 0
    while true {
        let word = UInt64(littleEndian: words.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let difference = word ^ pattern
        // The high bit of each byte of `found` is set where `difference` has a zero byte.
        let found = ~(((difference & low7) &+ low7) | difference | low7)
        let shifted = (word << 8) | carry
        if found == 0 {
            words.storeBytes(of: shifted.littleEndian, toByteOffset: offset, as: UInt64.self)
            carry = word >> 56
            offset += 8
            continue
        }
        let place = found.trailingZeroBitCount / 8
        // Bytes 0 ... place take the shifted value; the ones above keep theirs.
        let mask = place == 7 ? UInt64.max : (UInt64(1) << (8 * UInt64(place + 1))) - 1
        let merged = (shifted & mask) | (word & ~mask)
        words.storeBytes(of: merged.littleEndian, toByteOffset: offset, as: UInt64.self)
        return offset + place
    }
}

/// A run of `zeros` move-to-front zeros as RUNA and RUNB: the length in bijective base 2, least
/// significant digit first, RUNA the digit 1 and RUNB the digit 2. Returns the next free position.
@inline(__always)
private func putZeroRun(_ zeros: Int, symbols: UnsafeMutablePointer<UInt16>, at start: Int,
                        frequencies: UnsafeMutablePointer<Int32>) -> Int {
    var left = zeros
    var position = start
    while left > 0 {
        let symbol = (left & 1) == 1 ? 0 : 1
        symbols[position] = UInt16(symbol)
        frequencies[symbol] += 1
        position += 1
        left = (left - 1 - symbol) >> 1
    }
    return position
}

/// The Huffman tables of a block and which one codes each group of 50 symbols.
struct HuffmanTables {
    var tableCount = 0
    /// One entry per group of 50 symbols (the last group may be shorter).
    var selectors: [UInt8] = []
    /// `lengths[table * alphabetSize + symbol]`, each 1 to `maximumCodeLength`.
    var lengths: [UInt8] = []
}

/// libbz2 limits its codes to 17 bits; decoders accept up to 20.
let maximumCodeLength = 17

/// Chooses the tables: a first partition of the alphabet into ranges of about equal frequency, one
/// table favouring each range, then `passes` rounds of giving each group the table that codes it in
/// the fewest bits and rebuilding each table from the groups it got.
func chooseHuffmanTables(_ symbols: UnsafePointer<UInt16>, _ mtf: MoveToFrontOutput, passes: Int) -> HuffmanTables {
    let alphabetSize = mtf.alphabetSize
    let count = mtf.count
    var tables = HuffmanTables()
    tables.tableCount = count < 200 ? 2 : count < 600 ? 3 : count < 1200 ? 4 : count < 2400 ? 5 : 6
    let tableCount = tables.tableCount
    let groupCount = (count + 49) / 50
    tables.selectors = [UInt8](repeating: 0, count: groupCount)
    tables.lengths = [UInt8](repeating: 15, count: tableCount * alphabetSize)

    // The first partition: table t costs 0 bits for the symbols of its range, 15 for the others.
    var remaining = count
    var low = 0
    for table in 0..<tableCount {
        let target = remaining / (tableCount - table)
        var high = low - 1
        var sum = 0
        while sum < target && high < alphabetSize - 1 {
            high += 1
            sum += Int(mtf.frequencies[high])
        }
        // Keep some symbols for the tables still to come.
        if high > low && table != 0 && table != tableCount - 1 && (tableCount - table) % 2 == 1 {
            sum -= Int(mtf.frequencies[high])
            high -= 1
        }
        if high >= low {
            for symbol in low...high { tables.lengths[table * alphabetSize + symbol] = 0 }
        }
        remaining -= sum
        low = high + 1
    }

    var frequencies = [Int32](repeating: 0, count: tableCount * alphabetSize)
    var packed = [UInt64](repeating: 0, count: alphabetSize)
    for _ in 0..<max(1, passes) {
        // Each symbol's cost under every table, table t in bits 10t ..< 10t + 10 (a group costs at most
        // 50 × 20 bits, under 1024).
        for symbol in 0..<alphabetSize {
            var lanes: UInt64 = 0
            for table in 0..<tableCount {
                lanes |= UInt64(tables.lengths[table * alphabetSize + symbol]) << (10 * UInt64(table))
            }
            packed[symbol] = lanes
        }
        for index in frequencies.indices { frequencies[index] = 0 }
        packed.withUnsafeBufferPointer { packed in
            frequencies.withUnsafeMutableBufferPointer { frequencies in
                tables.selectors.withUnsafeMutableBufferPointer { selectors in
                    guard let packed = packed.baseAddress, let frequencies = frequencies.baseAddress else { return }
                    for group in 0..<groupCount {
                        let start = group * 50
                        let end = min(count, start + 50)
                        var cost: UInt64 = 0
                        for index in start..<end { cost &+= packed[Int(symbols[index])] }
                        var best = 0
                        var bestCost = cost & 0x3FF
                        for table in 1..<tableCount {
                            let tableCost = (cost >> (10 * UInt64(table))) & 0x3FF
                            if tableCost < bestCost {
                                best = table
                                bestCost = tableCost
                            }
                        }
                        selectors[group] = UInt8(best)
                        let row = frequencies + best * alphabetSize
                        for index in start..<end { row[Int(symbols[index])] += 1 }
                    }
                }
            }
        }
        for table in 0..<tableCount {
            let row = Array(frequencies[(table * alphabetSize)..<((table + 1) * alphabetSize)])
            let lengths = huffmanCodeLengths(row, maximumLength: maximumCodeLength)
            for symbol in 0..<alphabetSize { tables.lengths[table * alphabetSize + symbol] = lengths[symbol] }
        }
    }
    return tables
}

/// Huffman code lengths for `frequencies`, none over `maximumLength`. A symbol that does not occur is
/// counted as occurring once, so every symbol gets a code and the code is complete (every decoder's
/// tables fill). When the tree is too deep, the weights are halved (keeping them at least 1) and the
/// tree is built again, as libbz2 does.
func huffmanCodeLengths(_ frequencies: [Int32], maximumLength: Int) -> [UInt8] {
    let count = frequencies.count
    var weights = frequencies.map { UInt64(max(1, $0)) }
    var lengths = [UInt8](repeating: 0, count: count)
    if count == 1 {
        lengths[0] = 1
        return lengths
    }
    var order = Array(0..<count)
    var nodeWeights = [UInt64](repeating: 0, count: 2 * count - 1)
    var parents = [Int](repeating: 0, count: 2 * count - 1)
    var depths = [Int](repeating: 0, count: 2 * count - 1)
    while true {
        order.sort { weights[$0] != weights[$1] ? weights[$0] < weights[$1] : $0 < $1 }
        // Leaves 0 ..< count in increasing weight; internal nodes count ..< 2 count - 1 are made in
        // increasing weight too, so the two lightest are always at the front of one queue or the other.
        for (rank, symbol) in order.enumerated() { nodeWeights[rank] = weights[symbol] }
        var nextLeaf = 0
        var nextInternal = count
        for made in count..<(2 * count - 1) {
            var children = (0, 0)
            for child in 0..<2 {
                let takeLeaf = nextLeaf < count && (nextInternal >= made || nodeWeights[nextLeaf] <= nodeWeights[nextInternal])
                let node = takeLeaf ? nextLeaf : nextInternal
                if takeLeaf { nextLeaf += 1 } else { nextInternal += 1 }
                if child == 0 { children.0 = node } else { children.1 = node }
            }
            nodeWeights[made] = nodeWeights[children.0] + nodeWeights[children.1]
            parents[children.0] = made
            parents[children.1] = made
        }
        depths[2 * count - 2] = 0
        var deepest = 0
        for node in stride(from: 2 * count - 3, through: 0, by: -1) {
            depths[node] = depths[parents[node]] + 1
            deepest = max(deepest, depths[node])
        }
        if deepest <= maximumLength {
            for (rank, symbol) in order.enumerated() { lengths[symbol] = UInt8(depths[rank]) }
            return lengths
        }
        weights = weights.map { 1 + $0 / 2 }
    }
}
