// A push-style entry point to the parallel bzip2 compressor: the caller hands over bytes as it
// produces them (a tar stream built file by file), and compressed streams go out to a file descriptor.
//
// Equivalent to `BZip2.compress(from:to:level:jobs:)` fed through a pipe: the input is cut at the same
// places (every `level`×100000 − 19 bytes), each block becomes one bzip2 stream on a worker thread, and
// the streams are written in input order, so the output is byte for byte the same. It differs only in
// who drives: the producer calls `write` and `finish` instead of the engine reading a descriptor to its
// end, which saves a pipe, a thread and a copy for walferry-backup. ParallelCompressor.swift is
// unchanged; both share OrderedWorkerPool and compressStream.

/// Compresses the bytes written to it into a multi-stream .bz2 on a file descriptor.
///
/// One thread (the owner) calls `write`, `finish` and `close`; `close` must be called whatever happens,
/// so that the worker threads stop.
public final class BZip2Writer {
    private let pool: OrderedWorkerPool<[UInt8], Result<[UInt8], BZip2Error>>
    private var sink: FileDescriptorSink
    private let blockSize: Int
    private var block: [UInt8]
    private var blocks = 0
    private var finished = false
    private var closed = false

    /// Uncompressed bytes accepted so far.
    public private(set) var bytesIn: UInt64 = 0
    /// Compressed bytes written to the descriptor so far.
    public private(set) var bytesOut: UInt64 = 0

    /// Starts `jobs` compression threads writing to `outputFD` (which stays open: the caller owns it).
    /// - Throws: `.invalidLevel`, `.invalidJobs`, `.threadStart`.
    public convenience init(to outputFD: Int32, level: Int = 9, jobs: Int = BZip2.defaultJobs) throws(BZip2Error) {
        try self.init(to: outputFD, level: level, jobs: jobs, tuning: BZip2Tuning())
    }

    init(to outputFD: Int32, level: Int, jobs: Int, tuning: BZip2Tuning) throws(BZip2Error) {
        guard (1...9).contains(level) else { throw .invalidLevel(level) }
        guard jobs >= 1 else { throw .invalidJobs(jobs) }
        // The same block size as parallelCompress, so that the output is identical.
        let blockSize = max(1, tuning.blockSize ?? level * 100_000 - 19)
        pool = try makeCompressionPool(level: level, blockSize: blockSize, jobs: jobs, tuning: tuning)
        self.blockSize = blockSize
        sink = FileDescriptorSink(fd: outputFD, maxPerCall: tuning.ioChunk)
        block = []
        block.reserveCapacity(blockSize)
    }

    deinit {
        if !closed { pool.shutDown() }
    }

    /// Adds `bytes` to the input. Full blocks are handed to the workers; when as many blocks as the
    /// pool holds are in flight, this waits for the oldest and writes it out.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(BZip2Error) {
        precondition(!finished, "BZip2Writer.write after finish")
        var offset = 0
        while offset < bytes.count {
            let take = min(blockSize - block.count, bytes.count - offset)
            block.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
            offset += take
            bytesIn += UInt64(take)
            if block.count == blockSize { try submitBlock() }
        }
    }

    /// Adds `count` zero bytes to the input (tar padding, a file that shrank while it was read).
    public func writeZeros(_ count: Int) throws(BZip2Error) {
        var left = count
        while left > 0 {
            let take = min(blockSize - block.count, left)
            block.append(contentsOf: repeatElement(0, count: take))
            left -= take
            bytesIn += UInt64(take)
            if block.count == blockSize { try submitBlock() }
        }
    }

    /// Compresses what is left and writes every remaining stream. An empty input still becomes one
    /// empty stream, as `bzip2` writes, so that every decoder accepts the file.
    public func finish() throws(BZip2Error) {
        guard !finished else { return }
        finished = true
        if !block.isEmpty || blocks == 0 { try submitBlock() }
        while pool.inFlight > 0 { try writeOldest() }
    }

    /// Stops the worker threads (after their current block). Safe to call more than once.
    public func close() {
        guard !closed else { return }
        closed = true
        pool.shutDown()
    }

    private func submitBlock() throws(BZip2Error) {
        if pool.inFlight == pool.capacity { try writeOldest() }
        pool.submit(block)
        blocks += 1
        block = []
        block.reserveCapacity(blockSize)
    }

    private func writeOldest() throws(BZip2Error) {
        guard let result = pool.next() else { return }
        let stream = try result.get()
        try writeBytes(stream, to: &sink)
        bytesOut += UInt64(stream.count)
    }
}

