// The Burrows-Wheeler transform of a bzip2 block: the last column of the block's cyclic rotations in
// sorted order, and where the block itself (rotation 0) landed in that order (origPtr).
//
// Like libbz2's BZ2_blockSort, except that the sorting is libdivsufsort's suffix sort. bzip2 sorts
// rotations and a suffix sorter sorts suffixes; the two orders agree on a Lyndon word (a string
// strictly smaller than all its rotations), where no suffix can be a prefix of another that decides
// the rotation order. So the block is first turned to its least rotation (a linear two-pointer scan),
// suffix-sorted, and origPtr is looked up through the rotation offset. A periodic block (all zeros,
// "abab…") is the least rotation of its period repeated; its equal rotations come out of the suffix
// sort in one consistent order, and as they are equal strings, their last-column bytes are equal too:
// the transform is the same whatever their order, and any of them decodes to the same block.
//
// Why libdivsufsort and not an SA-IS of our own: measured on the RLE1'd level-9 blocks of
// bench/bzip2.sh's inputs (CPU time of the sort alone, the same suffix arrays checked equal), a plain
// recursive SA-IS in C (-O2, bit-packed types) took 1.60x libdivsufsort's time on a bulk-load WAL
// segment, 2.26x on an index-build one, 1.94x on an OLTP one and 2.16x on 100 MB of a pgbench data
// directory's tar (1.27 s against 0.59 s); libdivsufsort needs no memory beyond the suffix array, and
// Debian packages it (libdivsufsort3, MIT). The sort is about 60 % of the encoder's time, so an SA-IS
// would have made it slower than lbzip2. (libbz2's own sorter falls back to a slow path on the
// repetitive data WAL is full of.)

import CDivSufSort

/// Computes the Burrows-Wheeler transform of `count` bytes at `block` into `lastColumn` (which may be
/// `block` itself), sets `used[b]` for every byte b it holds, and returns origPtr. `rotated` (count + 1
/// bytes) and `suffixes` (count entries) are working memory.
func burrowsWheelerTransform(_ block: UnsafePointer<UInt8>, count: Int, rotated: UnsafeMutablePointer<UInt8>,
                             suffixes: UnsafeMutablePointer<Int32>, lastColumn: UnsafeMutablePointer<UInt8>,
                             used: UnsafeMutablePointer<Bool>) -> Int {
    precondition(count > 0 && count < Int(Int32.max), "a bzip2 block holds 1 to 900000 bytes")
    if count == 1 {
        lastColumn[0] = block[0]
        used[Int(block[0])] = true
        return 0
    }
    // rotated = the block's least rotation, after its own last byte, so that the byte before every
    // rotation of it, the first one included, is at index − 1.
    let start = leastRotation(block, count: count)
    let text = rotated + 1
    text.update(from: block + start, count: count - start)
    (text + (count - start)).update(from: block, count: start)
    rotated[0] = text[count - 1]
    // libdivsufsort fails only on a negative length or null pointers, which cannot happen here.
    _ = divsufsort(text, suffixes, Int32(count))

    // Rotation 0 of the block is rotation (count - start) % count of `text`.
    let original = start == 0 ? 0 : count - start
    var origPtr = 0
    for rank in 0..<count {
        let suffix = Int(suffixes[rank])
        let byte = text[suffix - 1]
        lastColumn[rank] = byte
        used[Int(byte)] = true
        if suffix == original { origPtr = rank }
    }
    return origPtr
}

/// The start of the lexicographically least rotation of the `count` bytes at `bytes` (the first one
/// when several rotations are equal). Two candidates advance past each other's mismatches, so that
/// every byte is compared a bounded number of times (at most 3 × count in all); equal stretches are
/// compared 8 bytes at a time, and starts that lose on their first byte are skipped a byte at a time.
func leastRotation(_ bytes: UnsafePointer<UInt8>, count: Int) -> Int {
    let raw = UnsafeRawPointer(bytes)
    /// The 8 bytes of the rotations' cycle from `position` (below 2 × count) on, the first in the
    /// lowest bits.
    func word(_ position: Int) -> UInt64 {
        let from = position >= count ? position - count : position
        if from + 8 <= count { return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: from, as: UInt64.self)) }
        var word: UInt64 = 0
        for index in 0..<8 { word |= UInt64(bytes[(from + index) % count]) << (8 * UInt64(index)) }
        return word
    }
    var first = 0
    var second = 1
    var matched = 0
    while first < count && second < count && matched < count {
        if matched == 0 {
            // A rotation whose first byte is bigger than the other candidate's is not the least: skip
            // such starts in a tight loop (most of a block, after the smallest byte took a candidate).
            while second < count && bytes[second] > bytes[first] { second += 1 }
            if second >= count { break }
            while first < count && bytes[first] > bytes[second] { first += 1 }
            if first == second { second += 1 }
            if first >= count || second >= count { break }
        }
        let a = word(first + matched)
        let b = word(second + matched)
        if a == b {
            matched += 8
            continue
        }
        // The first differing byte is the lowest one of the little-endian words.
        matched += (a ^ b).trailingZeroBitCount / 8
        if matched >= count { break }  // the two rotations are equal: a periodic block
        // The candidate with the bigger byte cannot start a least rotation, nor can any start inside
        // the stretch that matched, for the same reason.
        var x = first + matched
        if x >= count { x -= count }
        var y = second + matched
        if y >= count { y -= count }
        if bytes[x] > bytes[y] {
            first += matched + 1
        } else {
            second += matched + 1
        }
        if first == second { second += 1 }
        matched = 0
    }
    return min(first, second)
}
