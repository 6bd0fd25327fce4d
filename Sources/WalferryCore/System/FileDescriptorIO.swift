// Reading from a file descriptor until a buffer is full or the input ends.
//
// Like fread(3) on an unbuffered stream, without stdio: a pipe returns at most what its writer has
// written so far (64 kB at a time on Linux), so one read(2) rarely fills a 900 kB compression block.
// The writing side is `writeAll` in Console.swift.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
