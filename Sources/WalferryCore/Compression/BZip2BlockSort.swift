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
// Why libdivsufsort and not an SA-IS of our own, measured on the bench inputs (see the closing note of
// the branch that added it): libdivsufsort sorts a level-9 block of WAL or of a data-directory tar
// 1.5 to 2x faster than a plain SA-IS in C, and is packaged by Debian (libdivsufsort3, MIT).
// libbz2's sorter, by contrast, falls back to a slow path on the repetitive data WAL is full of.

import CDivSufSort

/// Bytes of working memory `burrowsWheelerTransform` needs in `doubled` for a block of `count` bytes.
func doubledBlockSize(_ count: Int) -> Int { 2 * count + 9 }

/// Computes the Burrows-Wheeler transform of `count` bytes at `block` into `lastColumn` (which may be
/// `block` itself), sets `used[b]` for every byte b it holds, and returns origPtr. `doubled`
/// (`doubledBlockSize(count)` bytes) and `suffixes` (`count` entries) are working memory.
func burrowsWheelerTransform(_ block: UnsafePointer<UInt8>, count: Int, doubled: UnsafeMutablePointer<UInt8>,
                             suffixes: UnsafeMutablePointer<Int32>, lastColumn: UnsafeMutablePointer<UInt8>,
                             used: UnsafeMutablePointer<Bool>) -> Int {
    precondition(count > 0 && count < Int(Int32.max), "a bzip2 block holds 1 to 900000 bytes")
    if count == 1 {
        lastColumn[0] = block[0]
        used[Int(block[0])] = true
        return 0
    }
    // doubled = the last byte, the block twice, 8 bytes of padding: every rotation is a slice of it,
    // the rotation starting at s is at doubled + 1 + s, and the byte before any rotation is its last.
    doubled[0] = block[count - 1]
    (doubled + 1).update(from: block, count: count)
    (doubled + 1 + count).update(from: block, count: count)
    (doubled + 1 + 2 * count).update(repeating: 0, count: 8)
    let start = leastRotation(doubled + 1, count: count)
    let rotated = doubled + 1 + start
    // libdivsufsort fails only on a negative length or null pointers, which cannot happen here.
    _ = divsufsort(rotated, suffixes, Int32(count))

    // Rotation 0 of the block is rotation (count - start) % count of `rotated`.
    let original = Int32(start == 0 ? 0 : count - start)
    var origPtr = 0
    for rank in 0..<count {
        let suffix = Int(suffixes[rank])
        let byte = rotated[suffix - 1]
        lastColumn[rank] = byte
        used[Int(byte)] = true
        if suffix == original { origPtr = rank }
    }
    return origPtr
}

/// The start of the lexicographically least rotation of the `count` bytes at `doubled`, which holds
/// them twice and 8 more readable bytes (the first one when several rotations are equal). Two
/// candidates advance past each other's mismatches, so that every byte is compared a bounded number
/// of times (at most 3 × count in all); equal stretches are compared 8 bytes at a time, and starts
/// that lose on their first byte are skipped a byte at a time.
func leastRotation(_ doubled: UnsafePointer<UInt8>, count: Int) -> Int {
    let raw = UnsafeRawPointer(doubled)
    var first = 0
    var second = 1
    var matched = 0
    while first < count && second < count && matched < count {
        if matched == 0 {
            // A rotation whose first byte is bigger than the other candidate's is not the least: skip
            // such starts in a tight loop (most of a block, after the smallest byte took a candidate).
            while second < count && doubled[second] > doubled[first] { second += 1 }
            while first < count && doubled[first] > doubled[second] { first += 1 }
            if first == second { second += 1 }
            if first >= count || second >= count { break }
        }
        let a = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: first + matched, as: UInt64.self))
        let b = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: second + matched, as: UInt64.self))
        if a == b {
            matched += 8
            continue
        }
        // The first differing byte is the lowest one of the little-endian words.
        matched += (a ^ b).trailingZeroBitCount / 8
        if matched >= count { break }  // the two rotations are equal: a periodic block
        // The candidate with the bigger byte cannot start a least rotation, nor can any start inside
        // the stretch that matched, for the same reason.
        if doubled[first + matched] > doubled[second + matched] {
            first += matched + 1
        } else {
            second += matched + 1
        }
        if first == second { second += 1 }
        matched = 0
    }
    return min(first, second)
}
