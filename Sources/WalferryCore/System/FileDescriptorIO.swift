// Reading from a file descriptor until a buffer is full or the input ends.
//
// Like fread(3) on an unbuffered stream, without stdio: a pipe returns at most what its writer has
// written so far (64 kB at a time on Linux), so one read(2) rarely fills a 900 kB compression block.
// The writing side is `writeAll` in Console.swift.

import Glibc

/// Reads into `buffer` until it is full or `fd` is at its end, retrying short reads and EINTR, with at
/// most `maxPerCall` bytes per read(2) call. Returns the number of bytes read: less than
/// `buffer.count` only at the end of the input. The corresponding C function is `read`.
func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, maxPerCall: Int = .max) throws(Errno) -> Int {
    guard let base = buffer.baseAddress else { return 0 }
    var filled = 0
    while filled < buffer.count {
        let count = read(fd, base + filled, min(buffer.count - filled, max(1, maxPerCall)))
        if count < 0 {
            if errno == EINTR { continue }
            throw Errno.current
        }
        if count == 0 { break }
        filled += count
    }
    return filled
}

/// Reads `fd` to its end, or its first `limit` bytes. The corresponding C function is `read`.
func readAll(_ fd: Int32, limit: Int = 64 << 20) throws(Errno) -> [UInt8] {
    var contents: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    defer { chunk.deallocate() }
    while contents.count < limit {
        let count = try readFully(fd, into: chunk)
        contents.append(contentsOf: chunk[..<count])
        if count < chunk.count { break }
    }
    return contents.count > limit ? Array(contents[..<limit]) : contents
}

/// Reads into `buffer` from `offset` until it is full or the file ends, retrying short reads and EINTR;
/// returns the number of bytes read. The file position is not used. The corresponding C function is
/// `pread`.
func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(Errno) -> Int {
    guard let base = buffer.baseAddress else { return 0 }
    var filled = 0
    while filled < buffer.count {
        let count = pread(fd, base + filled, buffer.count - filled, off_t(offset) + off_t(filled))
        if count < 0 {
            if errno == EINTR { continue }
            throw Errno.current
        }
        if count == 0 { break }
        filled += count
    }
    return filled
}

/// The index of the first byte where `a` and `b` differ within their common length, or nil when that
/// common part is equal. memcmp finds whether they differ at full speed; the byte is then searched.
func firstDifference(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int? {
    let common = min(a.count, b.count)
    guard common > 0, let left = a.baseAddress, let right = b.baseAddress, memcmp(left, right, common) != 0 else { return nil }
    // Narrow down by halves with memcmp, then finish byte by byte.
    var low = 0, high = common
    while high - low > 64 {
        let middle = (low + high) / 2
        if memcmp(left + low, right + low, middle - low) != 0 { high = middle } else { low = middle }
    }
    for index in low..<high where a[index] != b[index] { return index }
    return nil
}

/// A whole file mapped read-only into memory, unmapped on deinit. The corresponding C function is
/// `mmap` (MAP_POPULATE, so that the pages are in place before they are used).
///
/// A mapped file that shrinks under the mapping raises SIGBUS on access; Interruption's handler turns
/// that into a clean failure (temporary file removed, exit status 1) instead of a crash.
final class MappedFile {
    let bytes: UnsafeRawBufferPointer
    private let length: Int

    init(fd: Int32, size: UInt64) throws(Errno) {
        length = Int(size)
        guard length > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0), address != MAP_FAILED else {
            throw Errno.current
        }
        _ = madvise(address, length, MADV_SEQUENTIAL)
        bytes = UnsafeRawBufferPointer(start: address, count: length)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), length) }
    }
}

/// Flushes a file's data and metadata (or a directory's entries) to stable storage. The
/// corresponding C function is `fsync`.
func syncDescriptor(_ fd: Int32) throws(Errno) {
    _ = try retryingOnInterrupt { fsync(fd) }
}
