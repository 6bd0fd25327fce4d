// The bzip2 engine every walferry tool shares: parallel compression and decompression of standard
// .bz2 data, from a file descriptor to a file descriptor: our own encoder, libbz2's decoder.
//
// Compression is like `bzip2 -c -9`, except that the input is cut into blocks of the level's size that
// are compressed as independent streams on several threads and written in input order: the output is
// a multi-stream .bz2 (as pbzip2 writes) that bunzip2, `tar -xjf`, lbzip2 and Python's bz2 read, within
// a fraction of a percent of bzip2's size. Decompression is like `bzip2 -dc`, except that the streams
// of a multi-stream file are decoded in parallel, and trailing garbage is an error (bzip2 warns and
// exits 0). Memory stays bounded whatever the input size: a fixed number of blocks are in flight.
//
// The engine itself is in ParallelCompressor.swift and ParallelDecompressor.swift; the encoder in
// BZip2Encoder.swift and the files it names; libbz2 is wrapped in BZ2Stream.swift; errors are in
// BZip2Error.swift.

/// Parallel bzip2 compression and decompression.
public enum BZip2 {
    /// The default number of worker threads: the number of CPUs online.
    public static var defaultJobs: Int { onlineCPUCount }

    /// Compresses everything `inputFD` delivers (a file or a pipe, read to its end) into a multi-stream
    /// .bz2 written to `outputFD`.
    ///
    /// - Parameters:
    ///   - level: 1 to 9, the block size in units of 100 kB, as `bzip2 -1` … `bzip2 -9`. The default is 9.
    ///   - jobs: the number of compression threads, at least 1. The default is the number of online CPUs.
    ///     The output does not depend on it.
    ///   - onBlock: called on the calling thread with the uncompressed bytes, in input order, as they
    ///     pass, so that a caller can checksum what it compresses without reading it twice.
    /// - Returns: the bytes read and written.
    /// - Throws: `BZip2Error.read` or `.write` with the errno of a failed read(2) or write(2), and
    ///   `.invalidLevel`, `.invalidJobs`, `.threadStart` or `.outOfMemory`. Nothing is left running.
    @discardableResult
    public static func compress(from inputFD: Int32, to outputFD: Int32, level: Int = 9, jobs: Int = defaultJobs,
                                onBlock: ((UnsafeRawBufferPointer) -> Void)? = nil) throws(BZip2Error)
        -> (bytesIn: UInt64, bytesOut: UInt64) {
        try compress(from: inputFD, to: outputFD, level: level, jobs: jobs, tuning: BZip2Tuning(), onBlock: onBlock)
    }

    /// Decompresses the .bz2 data `inputFD` delivers (one or more concatenated streams, as bzip2, pbzip2,
    /// lbzip2 and `BZip2.compress` write them) to `outputFD`.
    ///
    /// Every byte of the input must belong to a complete stream with matching CRCs. When it does not,
    /// part of the output may already have been written; the caller must discard it.
    ///
    /// - Parameters:
    ///   - jobs: the number of decompression threads, at least 1. The default is the number of online
    ///     CPUs. Streams are decoded in parallel; a single-stream file (bzip2's, lbzip2's) is decoded in
    ///     order on the calling thread.
    ///   - onBlock: called on the calling thread with the decompressed bytes, in order, as they are
    ///     written.
    /// - Returns: the bytes read and written.
    /// - Throws: `BZip2Error.truncated` (including an empty input), `.trailingGarbage`, `.corrupt`,
    ///   `.notBZip2`, `.read`, `.write`, and the setup errors of `compress`. Nothing is left running.
    @discardableResult
    public static func decompress(from inputFD: Int32, to outputFD: Int32, jobs: Int = defaultJobs,
                                  onBlock: ((UnsafeRawBufferPointer) -> Void)? = nil) throws(BZip2Error)
        -> (bytesIn: UInt64, bytesOut: UInt64) {
        try decompress(from: inputFD, to: outputFD, jobs: jobs, tuning: BZip2Tuning(), onBlock: onBlock)
    }

    /// Compresses `bytes` in memory: the same output as `compress(from:to:level:jobs:)`.
    public static func compress(_ bytes: [UInt8], level: Int = 9, jobs: Int = defaultJobs) throws(BZip2Error) -> [UInt8] {
        try compress(bytes, level: level, jobs: jobs, tuning: BZip2Tuning())
    }

    /// Decompresses `bytes` in memory, with the checks of `decompress(from:to:jobs:)`.
    public static func decompress(_ bytes: [UInt8], jobs: Int = defaultJobs) throws(BZip2Error) -> [UInt8] {
        try decompress(bytes, jobs: jobs, tuning: BZip2Tuning())
    }

    // MARK: - With tuning, for the tests

    static func compress(from inputFD: Int32, to outputFD: Int32, level: Int, jobs: Int, tuning: BZip2Tuning,
                         onBlock: ((UnsafeRawBufferPointer) -> Void)? = nil) throws(BZip2Error)
        -> (bytesIn: UInt64, bytesOut: UInt64) {
        var source = FileDescriptorSource(fd: inputFD, maxPerCall: tuning.ioChunk)
        var sink = FileDescriptorSink(fd: outputFD, maxPerCall: tuning.ioChunk)
        return try parallelCompress(from: &source, to: &sink, level: level, jobs: jobs, tuning: tuning, onBlock: onBlock)
    }

    static func decompress(from inputFD: Int32, to outputFD: Int32, jobs: Int, tuning: BZip2Tuning,
                           onBlock: ((UnsafeRawBufferPointer) -> Void)? = nil) throws(BZip2Error)
        -> (bytesIn: UInt64, bytesOut: UInt64) {
        var source = FileDescriptorSource(fd: inputFD, maxPerCall: tuning.ioChunk)
        var sink = FileDescriptorSink(fd: outputFD, maxPerCall: tuning.ioChunk)
        return try parallelDecompress(from: &source, to: &sink, jobs: jobs, tuning: tuning, onBlock: onBlock)
    }

    static func compress(_ bytes: [UInt8], level: Int, jobs: Int, tuning: BZip2Tuning) throws(BZip2Error) -> [UInt8] {
        var source = MemorySource(bytes: bytes)
        var sink = MemorySink()
        try parallelCompress(from: &source, to: &sink, level: level, jobs: jobs, tuning: tuning, onBlock: nil)
        return sink.bytes
    }

    static func decompress(_ bytes: [UInt8], jobs: Int, tuning: BZip2Tuning) throws(BZip2Error) -> [UInt8] {
        var source = MemorySource(bytes: bytes)
        var sink = MemorySink()
        try parallelDecompress(from: &source, to: &sink, jobs: jobs, tuning: tuning, onBlock: nil)
        return sink.bytes
    }
}

/// Sizes the engine works with. The defaults are what the public API uses; tests shrink them to drive
/// every path (one-byte reads and writes, forced cuts, speculative decodes that give up) on small data.
struct BZip2Tuning: Sendable {
    /// The most bytes one read(2) or write(2) asks for, and the size of the output buffer of the
    /// in-order decoder.
    var ioChunk = 1 << 20
    /// Blocks (compression) or pieces (decompression) in flight per thread: read but not yet written.
    var inFlightPerJob = 2
    /// Input bytes per compressed stream; nil for the level's block size.
    var blockSize: Int?
    /// A piece of compressed input that grows past this without a stream boundary is cut and decoded in
    /// order instead of in parallel: it belongs to a long multi-block stream (bzip2's, lbzip2's).
    var maxPieceSize = 2 << 20
    /// The most output a worker keeps from one piece; a piece that decodes to more is decoded again in
    /// order. Our own streams and pbzip2's decode to at most 900 kB.
    var maxPieceOutput = 4 << 20
    /// For the tests only: also treat every this-many-th byte position as a possible stream start, to
    /// check that false splits never change the output.
    var falseBoundaryInterval: Int?
}

// MARK: - Where the bytes come from and go

/// A byte source the engine reads to its end.
protocol BZip2Source {
    /// Fills `buffer`, or reads what is left at the end of the input; returns the count.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(BZip2Error) -> Int
}

/// Where the engine writes.
protocol BZip2Sink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(BZip2Error)
}

struct FileDescriptorSource: BZip2Source {
    let fd: Int32
    let maxPerCall: Int

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(BZip2Error) -> Int {
        do {
            return try readFully(fd, into: buffer, maxPerCall: maxPerCall)
        } catch {
            throw .read(error)
        }
    }
}

struct FileDescriptorSink: BZip2Sink {
    let fd: Int32
    let maxPerCall: Int

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(BZip2Error) {
        var offset = 0
        while offset < bytes.count {
            let end = offset + min(bytes.count - offset, max(1, maxPerCall))
            if let error = writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[offset..<end])) { throw .write(error) }
            offset = end
        }
    }
}

struct MemorySource: BZip2Source {
    let bytes: [UInt8]
    var offset = 0

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(BZip2Error) -> Int {
        let count = min(buffer.count, bytes.count - offset)
        bytes.withUnsafeBytes { all in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[offset..<offset + count]))
        }
        offset += count
        return count
    }
}

struct MemorySink: BZip2Sink {
    var bytes: [UInt8] = []

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(BZip2Error) {
        self.bytes.append(contentsOf: bytes)
    }
}
