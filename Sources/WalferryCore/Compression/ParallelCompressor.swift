// Parallel compression: input blocks compressed as independent bzip2 streams on worker threads,
// written in input order.
//
// Like `pbzip2 -c` (one stream per block, concatenated), with our own encoder (BZip2Encoder.swift)
// doing the compressing. Unlike lbzip2, which writes one stream, every block here is a complete
// stream, so that any decoder can start at a block, and our decompressor can decode the blocks in
// parallel without searching for bit-aligned block headers. The cost is 14 bytes of stream header and
// trailer per 900 kB block.

import Glibc

/// The worker threads that compress blocks into complete streams, results in input order: shared by
/// the pull engine (`parallelCompress`) and the push one (BZip2Writer.swift).
func makeCompressionPool(level: Int, blockSize: Int, jobs: Int, tuning: BZip2Tuning) throws(BZip2Error)
    -> OrderedWorkerPool<[UInt8], Result<[UInt8], BZip2Error>> {
    do {
        return try OrderedWorkerPool(
            threads: jobs, capacity: jobs * max(1, tuning.inFlightPerJob),
            // Each thread's encoder keeps its working memory (about 8 MB at level 9) between blocks.
            makeContext: { BZip2Encoder(level: level) },
            work: { encoder, block in
                block.withUnsafeBytes { input in .success(encoder.encodeStream(input)) }
            })
    } catch {
        throw .threadStart(error)
    }
}

/// Compresses `source` to its end into `sink`: see `BZip2.compress(from:to:level:jobs:onBlock:)`.
@discardableResult
func parallelCompress<Source: BZip2Source, Sink: BZip2Sink>(
    from source: inout Source, to sink: inout Sink, level: Int, jobs: Int, tuning: BZip2Tuning,
    onBlock: ((UnsafeRawBufferPointer) -> Void)?
) throws(BZip2Error) -> (bytesIn: UInt64, bytesOut: UInt64) {
    guard (1...9).contains(level) else { throw .invalidLevel(level) }
    guard jobs >= 1 else { throw .invalidJobs(jobs) }

    // A piece of level×100000 − 19 input bytes, libbz2's most per block (counted after the first
    // run-length stage, which usually shortens data), becomes one stream: of one block, or two when
    // that stage lengthens it (BZip2Encoder.swift).
    let blockSize = max(1, tuning.blockSize ?? level * 100_000 - 19)
    let pool = try makeCompressionPool(level: level, blockSize: blockSize, jobs: jobs, tuning: tuning)
    defer { pool.shutDown() }  // also on errors: the threads stop after their current block

    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0

    func writeOldest() throws(BZip2Error) {
        guard let result = pool.next() else { return }
        let stream = try result.get()
        try writeBytes(stream, to: &sink)
        bytesOut += UInt64(stream.count)
    }

    var blocks = 0
    while true {
        var readError: BZip2Error?
        let block = [UInt8](unsafeUninitializedCapacity: blockSize) { buffer, count in
            do throws(BZip2Error) {
                count = try source.read(into: UnsafeMutableRawBufferPointer(buffer))
            } catch {
                readError = error
                count = 0
            }
        }
        if let readError { throw readError }
        // An empty input still becomes one (empty) stream, as bzip2 writes, so that every decoder
        // accepts the result.
        if block.isEmpty && blocks > 0 { break }
        if let onBlock, !block.isEmpty { block.withUnsafeBytes { onBlock($0) } }
        bytesIn += UInt64(block.count)
        if pool.inFlight == pool.capacity { try writeOldest() }
        pool.submit(block)
        blocks += 1
        // A short read means the end of the input: no need to ask again.
        if block.count < blockSize { break }
    }
    while pool.inFlight > 0 { try writeOldest() }
    return (bytesIn, bytesOut)
}

/// Writes an array through a sink; typed throws do not pass through `withUnsafeBytes`'s closure.
func writeBytes<Sink: BZip2Sink>(_ bytes: [UInt8], to sink: inout Sink) throws(BZip2Error) {
    var failure: BZip2Error?
    bytes.withUnsafeBytes { buffer in
        do throws(BZip2Error) {
            try sink.write(buffer)
        } catch {
            failure = error
        }
    }
    if let failure { throw failure }
}
