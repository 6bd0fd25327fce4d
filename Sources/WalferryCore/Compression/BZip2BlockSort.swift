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

/// Computes the Burrows-Wheeler transform of `count` bytes at `block` into `lastColumn` and returns
/// origPtr. `rotated` (count bytes) and `suffixes` (count entries) are working memory.
func burrowsWheelerTransform(_ block: UnsafePointer<UInt8>, count: Int, rotated: UnsafeMutablePointer<UInt8>,
                             suffixes: UnsafeMutablePointer<Int32>, lastColumn: UnsafeMutablePointer<UInt8>) -> Int {
    precondition(count > 0 && count < Int(Int32.max), "a bzip2 block holds 1 to 900000 bytes")
    if count == 1 {
        lastColumn[0] = block[0]
        return 0
    }
    let start = leastRotation(block, count: count)
    // rotated = block[start...] + block[..<start]
    (rotated).update(from: block + start, count: count - start)
    (rotated + (count - start)).update(from: block, count: start)
    // libdivsufsort fails only on a negative length or null pointers, which cannot happen here.
    _ = divsufsort(rotated, suffixes, Int32(count))

    // Rotation 0 of the block is rotation (count - start) % count of `rotated`.
    let original = Int32(start == 0 ? 0 : count - start)
    var origPtr = 0
    let last = rotated[count - 1]
    for rank in 0..<count {
        let suffix = suffixes[rank]
        if suffix == 0 {
            lastColumn[rank] = last
            if original == 0 { origPtr = rank }
        } else {
            lastColumn[rank] = rotated[Int(suffix) - 1]
            if suffix == original { origPtr = rank }
        }
    }
    return origPtr
}

/// The start of the lexicographically least rotation of `count` bytes (the first one when several are
/// equal): two candidates advance past each other's mismatches, so that every byte is compared a
/// bounded number of times (at most 3 × count comparisons in all).
func leastRotation(_ bytes: UnsafePointer<UInt8>, count: Int) -> Int {
    var first = 0
    var second = 1
    var matched = 0
    while first < count && second < count && matched < count {
        var a = first + matched
        if a >= count { a -= count }
        var b = second + matched
        if b >= count { b -= count }
        let x = bytes[a]
        let y = bytes[b]
        if x == y {
            matched += 1
            continue
        }
        // The candidate with the bigger byte cannot start a least rotation, nor can any start inside
        // the stretch that matched, for the same reason.
        if x > y {
            first += matched + 1
        } else {
            second += matched + 1
        }
        if first == second { second += 1 }
        matched = 0
    }
    return min(first, second)
}
