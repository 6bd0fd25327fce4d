// Parallel decompression: the compressed input is cut where streams seem to start, the pieces are
// decoded speculatively on worker threads, and each result is used only when decoding in order would
// have produced exactly it.
//
// Like `bzip2 -dc`, which reads concatenated streams one after the other, but:
// - a multi-stream file (ours, pbzip2's, `cat a.bz2 b.bz2`) is decoded in parallel, stream by stream;
// - bytes after the last stream are an error, not a warning;
// - a single-stream file (bzip2's, lbzip2's) is decoded in order on the calling thread, at bzip2's
//   speed. lbzip2 also parallelises those, by searching for bit-aligned block headers and rebuilding
//   streams around them; that is left for later.
//
// Why a false split cannot change the output. Every stream starts at a byte boundary with "BZh1"…"BZh9"
// followed by the 48-bit block magic 0x314159265359 (or, for an empty stream, the end-of-stream magic
// 0x177245385090). The splitter cuts the input before every such 10-byte pattern; compressed data can
// contain one by chance. A worker decodes a piece with fresh decoders, one stream after the other, and
// reports success only if the last stream ends (BZ_STREAM_END, CRCs checked) exactly at the piece's last
// byte. The in-order consumer uses that result only when the previous pieces ended exactly between two
// streams. Then the piece starts where `bzip2 -d` would start a new stream, and libbz2 is
// deterministic: decoding the same bytes from the same state gives the same output and stops at the
// same byte. In every other case (a false cut, a piece too big to keep, a corrupt stream) the consumer
// decodes the piece's bytes again itself, continuing the stream that the previous piece left open; that
// in-order decoding also produces every error message, so errors read the same whatever the number of
// threads.

import CBZip2

import Glibc

/// A run of compressed input bytes, cut before a possible stream start.
private struct Piece: Sendable {
    let bytes: [UInt8]
    /// True when the piece both starts and ends at a possible stream boundary (or the input's start or
    /// end), so that decoding it alone can succeed.
    let speculate: Bool
}

/// A piece with what a worker made of it.
private struct DecodedPiece: Sendable {
    let piece: Piece
    /// The piece's decompressed bytes, when it decoded alone to whole streams; nil otherwise.
    let output: PieceBuffer?
    let streams: Int
}

/// Memory for one piece's decompressed bytes: filled by a worker, written by the owner thread, then
/// handed back for another piece. Reusing it saves a copy of every output byte and the page faults of
/// fresh memory, about a tenth of the CPU time on a 16 MB WAL segment.
private final class PieceBuffer: @unchecked Sendable {
    // @unchecked: one thread at a time uses a buffer, and each hand-over goes through a lock (the worker
    // pool's from worker to owner, the recycler's from owner back to a worker), which orders the
    // memory accesses.
    let storage: UnsafeMutableRawBufferPointer
    var count = 0

    init(capacity: Int) { storage = .allocate(byteCount: capacity, alignment: 16) }

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }
}

/// The piece buffers not in use, shared by the workers and the owner.
private final class PieceBufferRecycler: @unchecked Sendable {
    // @unchecked: `idle` is read and written only with `lock` held; the other properties are constants.
    private let lock = ConditionLock()
    private var idle: [PieceBuffer] = []
    private let bufferSize: Int
    private let keep: Int

    /// Buffers of `bufferSize` bytes; at most `keep` idle ones are kept (one per piece in flight and
    /// per thread is all that can be in use at once).
    init(bufferSize: Int, keep: Int) {
        self.bufferSize = bufferSize
        self.keep = keep
    }

    func take() -> PieceBuffer {
        lock.withLock { idle.popLast() } ?? PieceBuffer(capacity: bufferSize)
    }

    func give(_ buffer: PieceBuffer) {
        buffer.count = 0
        lock.withLock { if idle.count < keep { idle.append(buffer) } }
    }
}

/// What each decompression thread keeps between pieces.
private final class DecompressionContext {
    let memory = BZ2Memory()
}

/// Decompresses `source` to its end into `sink`: see `BZip2.decompress(from:to:jobs:onBlock:)`.
@discardableResult
func parallelDecompress<Source: BZip2Source, Sink: BZip2Sink>(
    from source: inout Source, to sink: inout Sink, jobs: Int, tuning: BZip2Tuning,
    onBlock: ((UnsafeRawBufferPointer) -> Void)?
) throws(BZip2Error) -> (bytesIn: UInt64, bytesOut: UInt64) {
    guard jobs >= 1 else { throw .invalidJobs(jobs) }

    let capacity = jobs * max(1, tuning.inFlightPerJob)
    let buffers = PieceBufferRecycler(bufferSize: max(1, tuning.maxPieceOutput), keep: capacity + jobs)
    let pool: OrderedWorkerPool<Piece, DecodedPiece>
    do {
        pool = try OrderedWorkerPool(
            threads: jobs, capacity: capacity,
            makeContext: { DecompressionContext() },
            work: { context, piece in
                guard piece.speculate else { return DecodedPiece(piece: piece, output: nil, streams: 0) }
                let buffer = buffers.take()
                let decoded = piece.bytes.withUnsafeBytes {
                    decodeCompleteStreams($0, into: buffer.storage, memory: context.memory)
                }
                guard let decoded else {
                    buffers.give(buffer)
                    return DecodedPiece(piece: piece, output: nil, streams: 0)
                }
                buffer.count = decoded.produced
                return DecodedPiece(piece: piece, output: buffer, streams: decoded.streams)
            })
    } catch {
        throw .threadStart(error)
    }
    defer { pool.shutDown() }  // also on errors: the threads stop after their current piece

    let splitter = PieceSplitter(tuning: tuning)
    let decoder = InOrderDecoder(outputSize: max(1, tuning.ioChunk))
    var bytesOut: UInt64 = 0

    func emit(_ bytes: UnsafeRawBufferPointer) throws(BZip2Error) {
        guard !bytes.isEmpty else { return }
        onBlock?(bytes)
        try sink.write(bytes)
        bytesOut += UInt64(bytes.count)
    }

    func consumeOldest() throws(BZip2Error) {
        guard let decoded = pool.next() else { return }
        if decoder.isBetweenStreams, let output = decoded.output {
            defer { buffers.give(output) }
            try emit(output.bytes)
            decoder.streamsCompleted += decoded.streams
        } else {
            if let output = decoded.output { buffers.give(output) }
            try decoder.feed(decoded.piece.bytes, emit: emit)
        }
    }

    while let piece = try splitter.next(from: &source) {
        if pool.inFlight == pool.capacity { try consumeOldest() }
        pool.submit(piece)
    }
    while pool.inFlight > 0 { try consumeOldest() }
    try decoder.finish(emit: emit)
    return (splitter.bytesRead, bytesOut)
}

// MARK: - Cutting the input into pieces

/// Reads the compressed input and cuts it before every possible stream start. Used by the owner
/// thread only.
private final class PieceSplitter {
    private let readSize: Int
    private let maxPieceSize: Int
    private let falseBoundaryInterval: Int?

    /// Input read and not yet handed out, `pending[..<count]`: the current piece starts at `start`. Raw
    /// memory rather than an array, so that a read does not first zero what it is about to fill.
    private var pending = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var count = 0
    private var start = 0
    /// Every position in `start + 1 ..< scanned` has been checked and is not a possible stream start.
    private var scanned = 1
    /// The input offset of `pending[0]`.
    private var base: UInt64 = 0
    /// Whether the current piece starts at a possible stream start (or at the input's start) rather
    /// than at a forced cut.
    private var startsAtBoundary = true
    private var atEnd = false
    private(set) var bytesRead: UInt64 = 0

    init(tuning: BZip2Tuning) {
        readSize = max(1, tuning.ioChunk)
        maxPieceSize = max(16, tuning.maxPieceSize)
        falseBoundaryInterval = tuning.falseBoundaryInterval.flatMap { $0 > 0 ? $0 : nil }
    }

    deinit { pending.deallocate() }

    private var filled: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: pending[..<count]) }

    /// The next piece, or nil at the end of the input.
    func next<Source: BZip2Source>(from source: inout Source) throws(BZip2Error) -> Piece? {
        while true {
            let from = max(start + 1, scanned)
            let (found, checkedUpTo) = findStreamStart(in: filled, from: from)
            if let boundary = found {
                return cut(at: boundary, endsAtBoundary: true)
            }
            scanned = checkedUpTo
            if atEnd {
                // The rest of the input, possible boundary or not: only what follows it could tell.
                return start < count ? cut(at: count, endsAtBoundary: true) : nil
            }
            if count - start >= maxPieceSize && scanned > start + 1 {
                // A long stream: hand over what is known to hold no stream start, to be decoded in order.
                return cut(at: scanned, endsAtBoundary: false)
            }
            try readMore(from: &source)
        }
    }

    private func cut(at end: Int, endsAtBoundary: Bool) -> Piece {
        let piece = Piece(bytes: Array(UnsafeRawBufferPointer(rebasing: pending[start..<end])),
                          speculate: startsAtBoundary && endsAtBoundary)
        start = end
        scanned = end + 1
        startsAtBoundary = endsAtBoundary
        return piece
    }

    private func readMore<Source: BZip2Source>(from source: inout Source) throws(BZip2Error) {
        if start > 0 {
            // Drop what has been handed out, so that `pending` holds at most one piece and one read.
            if let base = pending.baseAddress { base.copyMemory(from: base + start, byteCount: count - start) }
            count -= start
            base += UInt64(start)
            scanned -= start
            start = 0
        }
        if pending.count - count < readSize {
            let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(2 * pending.count, count + readSize), alignment: 16)
            if let old = pending.baseAddress, let new = larger.baseAddress { new.copyMemory(from: old, byteCount: count) }
            pending.deallocate()
            pending = larger
        }
        let got = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: pending[count..<count + readSize]))
        count += got
        bytesRead += UInt64(got)
        // The sources fill the whole buffer unless the input has ended.
        if got < readSize { atEnd = true }
    }

    /// The first possible stream start at or after `from`, and how far the search got: positions before
    /// that are not stream starts, positions from it need more input to tell.
    private func findStreamStart(in buffer: UnsafeRawBufferPointer, from: Int) -> (Int?, Int) {
        guard let base = buffer.baseAddress, from < buffer.count else { return (nil, max(from, 0)) }
        var position = from
        var result: (Int?, Int)? = nil
        while position < buffer.count {
            // memchr is vectorised; compressed data holds a "B" every 256 bytes or so.
            guard let hit = memchr(base + position, 0x42, buffer.count - position) else { break }
            let index = base.distance(to: UnsafeRawPointer(hit))
            if index + 10 > buffer.count {
                // Too close to the end to check; at the end of the input, too short to be a stream.
                result = (nil, atEnd ? buffer.count : index)
                break
            }
            if isStreamStart(buffer, at: index) {
                result = (index, index)
                break
            }
            position = index + 1
        }
        let (found, checked) = result ?? (nil, buffer.count)
        guard let interval = falseBoundaryInterval else { return (found, checked) }
        // Test hook: the next multiple of `interval` (in input offsets) counts as a boundary too.
        let absoluteFrom = self.base + UInt64(from)
        let remainder = absoluteFrom % UInt64(interval)
        let falseBoundary = from + Int(remainder == 0 ? 0 : UInt64(interval) - remainder)
        if falseBoundary < min(found ?? .max, checked) { return (falseBoundary, falseBoundary) }
        return (found, checked)
    }
}

/// True when the 10 bytes at `index` are "BZh", a level digit, followed by the block magic
/// 0x314159265359 or the end-of-stream magic 0x177245385090.
private func isStreamStart(_ buffer: UnsafeRawBufferPointer, at index: Int) -> Bool {
    guard buffer[index] == 0x42, buffer[index + 1] == 0x5A, buffer[index + 2] == 0x68 else { return false }  // "BZh"
    let level = buffer[index + 3]
    guard level >= UInt8(ascii: "1") && level <= UInt8(ascii: "9") else { return false }
    let blockMagic: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x31, 0x41, 0x59, 0x26, 0x53, 0x59)
    let endMagic: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x17, 0x72, 0x45, 0x38, 0x50, 0x90)
    let next = (buffer[index + 4], buffer[index + 5], buffer[index + 6], buffer[index + 7], buffer[index + 8],
                buffer[index + 9])
    return next == blockMagic || next == endMagic
}

// MARK: - Decoding in order

/// Decodes pieces in input order, carrying a stream that is not finished from one piece to the next:
/// what `bzip2 -d` does with the whole input, and the source of every error message.
private final class InOrderDecoder {
    private let memory = BZ2Memory()
    private let output: UnsafeMutableRawBufferPointer
    /// The stream being decoded; nil between streams.
    private var stream: BZ2Stream?
    /// The last call filled the output buffer, so libbz2 may hold more output without more input.
    private var outputWasFull = false
    /// Complete streams so far, decoded here or by the workers.
    var streamsCompleted = 0

    init(outputSize: Int) {
        output = .allocate(byteCount: outputSize, alignment: 16)
    }

    deinit { output.deallocate() }

    /// True when the input so far ends exactly after a complete stream.
    var isBetweenStreams: Bool { stream == nil }

    func feed(_ bytes: [UInt8], emit: (UnsafeRawBufferPointer) throws(BZip2Error) -> Void) throws(BZip2Error) {
        var failure: BZip2Error?
        bytes.withUnsafeBytes { input in
            do throws(BZip2Error) { try feed(input, emit: emit) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Decodes `input`, which continues the input fed so far, and emits what it decodes.
    func feed(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(BZip2Error) -> Void) throws(BZip2Error) {
        var consumed = 0
        while consumed < input.count || (stream != nil && outputWasFull) {
            let current: BZ2Stream
            if let stream {
                current = stream
            } else {
                current = try BZ2Stream.decompressor(memory: memory)
                stream = current
            }
            let result = current.step(UnsafeRawBufferPointer(rebasing: input[consumed...]), output)
            consumed += result.consumed
            outputWasFull = result.produced == output.count
            try emit(UnsafeRawBufferPointer(rebasing: output[..<result.produced]))
            switch result.code {
            case BZ_STREAM_END:
                stream = nil  // ends it; what follows, if anything, must be another stream
                outputWasFull = false
                streamsCompleted += 1
            case BZ_OK:
                // libbz2 always moves when it has both input and room; a stall would loop forever.
                if result.consumed == 0 && result.produced == 0 && consumed < input.count {
                    throw .library(code: BZ_OK)
                }
            case BZ_DATA_ERROR_MAGIC where streamsCompleted > 0:
                stream = nil
                throw .trailingGarbage
            default:
                stream = nil
                throw BZip2Error(libbz2: result.code) ?? .library(code: result.code)
            }
        }
    }

    /// Ends the input: flushes what libbz2 still holds, and fails unless the input ended exactly after
    /// a complete stream.
    func finish(emit: (UnsafeRawBufferPointer) throws(BZip2Error) -> Void) throws(BZip2Error) {
        try feed(UnsafeRawBufferPointer(start: nil, count: 0), emit: emit)
        if stream != nil || streamsCompleted == 0 {
            stream = nil
            throw .truncated
        }
    }
}
