// One libbz2 stream (a bz_stream and the memory libbz2 allocates for it), and two one-shot operations:
// decode a piece of input that should hold whole streams (the parallel engine's decoder, on its worker
// threads), and compress a block into a complete stream (the reference the encoder's tests compare
// with; the engine compresses with BZip2Encoder).
//
// Like BZ2_bzBuffToBuffCompress / BZ2_bzBuffToBuffDecompress, but on a bz_stream that lives at one heap
// address (libbz2 starts every call with `if (s->strm != strm) return BZ_PARAM_ERROR`, and a Swift `var`
// passed with `&` has no stable address), with libbz2's working memory recycled between streams, and a
// decoder that reports where in its input each stream ended.
//
// Developed using the libbz2 manual, "3.3 Low-level interface": https://sourceware.org/bzip2/manual/manual.html

import CBZip2

import Glibc

/// The memory libbz2 asks for through bzalloc/bzfree, kept after a stream ends so that the next stream
/// of the same thread gets it back.
///
/// A level-9 compressor allocates about 7.6 MB and a decompressor 3.6 MB, and the engine starts a new
/// stream for every 900 kB block. Through malloc those are fresh mmap'ed pages each time, and faulting
/// them in costs several percent of the compression time. One cache belongs to one thread.
final class BZ2Memory {
    private var live: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
    private var idle: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
    /// Enough for the four allocations of a compressor plus the two of a decompressor.
    private let idleLimit = 8

    init() {}

    deinit {
        for block in live { free(block.pointer) }
        for block in idle { free(block.pointer) }
    }

    fileprivate func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        if let index = idle.firstIndex(where: { $0.size == size }) {
            let block = idle.remove(at: index)
            live.append(block)
            return block.pointer
        }
        guard let pointer = malloc(size) else { return nil }
        live.append((pointer, size))
        return pointer
    }

    fileprivate func release(_ pointer: UnsafeMutableRawPointer) {
        guard let index = live.firstIndex(where: { $0.pointer == pointer }) else { return }
        idle.append(live.remove(at: index))
        if idle.count > idleLimit { free(idle.removeFirst().pointer) }
    }
}

/// A bz_stream in memory of its own, ended (BZ2_bzCompressEnd or BZ2_bzDecompressEnd) when the object
/// goes away, whatever path led there.
final class BZ2Stream {
    private enum Direction { case compress, decompress }

    private let stream: UnsafeMutablePointer<bz_stream>
    private let direction: Direction
    /// Kept alive for as long as libbz2 may call back into it through `opaque`.
    private let memory: BZ2Memory

    private init(stream: UnsafeMutablePointer<bz_stream>, direction: Direction, memory: BZ2Memory) {
        self.stream = stream
        self.direction = direction
        self.memory = memory
    }

    deinit {
        // Ending frees libbz2's state through `memory`; neither call can fail on an initialised stream.
        switch direction {
        case .compress: _ = BZ2_bzCompressEnd(stream)
        case .decompress: _ = BZ2_bzDecompressEnd(stream)
        }
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// A compressor for one stream of `level`×100 kB blocks. The corresponding C function is
    /// `BZ2_bzCompressInit`, with workFactor 0 (libbz2's default, 30, as the bzip2 command uses).
    static func compressor(level: Int32, memory: BZ2Memory) throws(BZip2Error) -> BZ2Stream {
        try make(.compress, memory: memory) { BZ2_bzCompressInit($0, level, 0, 0) }
    }

    /// A decompressor for one stream. The corresponding C function is `BZ2_bzDecompressInit`, without
    /// the slow small-memory mode.
    static func decompressor(memory: BZ2Memory) throws(BZip2Error) -> BZ2Stream {
        try make(.decompress, memory: memory) { BZ2_bzDecompressInit($0, 0, 0) }
    }

    private static func make(_ direction: Direction, memory: BZ2Memory,
                             initialise: (UnsafeMutablePointer<bz_stream>) -> Int32) throws(BZip2Error) -> BZ2Stream {
        let stream = UnsafeMutablePointer<bz_stream>.allocate(capacity: 1)
        stream.initialize(to: bz_stream())
        stream.pointee.opaque = Unmanaged.passUnretained(memory).toOpaque()
        stream.pointee.bzalloc = { opaque, count, size in
            guard let opaque, count >= 0, size >= 0 else { return nil }
            return Unmanaged<BZ2Memory>.fromOpaque(opaque).takeUnretainedValue().allocate(Int(count) * Int(size))
        }
        stream.pointee.bzfree = { opaque, pointer in
            guard let opaque, let pointer else { return }
            Unmanaged<BZ2Memory>.fromOpaque(opaque).takeUnretainedValue().release(pointer)
        }
        let code = initialise(stream)
        guard code == BZ_OK else {
            // Nothing to end: a failed init has freed what it had allocated.
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw BZip2Error(libbz2: code) ?? .library(code: code)
        }
        return BZ2Stream(stream: stream, direction: direction, memory: memory)
    }

    /// One call of BZ2_bzCompress (with `action` BZ_RUN or BZ_FINISH) or BZ2_bzDecompress: consumes
    /// from `input`, fills `output`, and says how far it got. No pointer into either buffer is left in
    /// the bz_stream afterwards.
    func step(_ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer,
              action: Int32 = BZ_FINISH) -> (code: Int32, consumed: Int, produced: Int) {
        // avail_in and avail_out are 32-bit; our buffers are far smaller, but a caller may pass more.
        let inputCount = UInt32(clamping: input.count)
        let outputCount = UInt32(clamping: output.count)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { placeholder in
            // An empty buffer may have no address; libbz2 does not touch a buffer whose length is 0, but
            // gets a valid address anyway. libbz2 never writes through next_in: it is `char *` only
            // for C's sake.
            let inputBase = input.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
                ?? UnsafeMutableRawPointer(placeholder.baseAddress)
            let outputBase = output.baseAddress ?? UnsafeMutableRawPointer(placeholder.baseAddress)
            stream.pointee.next_in = inputBase?.assumingMemoryBound(to: CChar.self)
            stream.pointee.avail_in = inputCount
            stream.pointee.next_out = outputBase?.assumingMemoryBound(to: CChar.self)
            stream.pointee.avail_out = outputCount
            defer {
                // No pointer into the caller's buffers outlives the call.
                stream.pointee.next_in = nil
                stream.pointee.next_out = nil
                stream.pointee.avail_in = 0
                stream.pointee.avail_out = 0
            }
            let code = switch direction {
            case .compress: BZ2_bzCompress(stream, action)
            case .decompress: BZ2_bzDecompress(stream)
            }
            return (code, Int(inputCount - stream.pointee.avail_in), Int(outputCount - stream.pointee.avail_out))
        }
    }
}

/// The most a compressed stream of `count` input bytes can take: the libbz2 manual's bound for
/// BZ2_bzBuffToBuffCompress ("1% larger than the uncompressed data, plus six hundred extra bytes"),
/// with a little more for safety.
func compressedSizeBound(_ count: Int) -> Int { count + count / 100 + 1024 }

/// Compresses `input` into one complete bzip2 stream with libbz2, using `scratch` (at least
/// `compressedSizeBound(input.count)` bytes) as the output buffer, and returns the stream's bytes.
/// The engine compresses with BZip2Encoder; this is the reference the tests compare it with.
func libbz2CompressStream(_ input: UnsafeRawBufferPointer, level: Int32, memory: BZ2Memory,
                    scratch: UnsafeMutableRawBufferPointer) throws(BZip2Error) -> [UInt8] {
    let stream = try BZ2Stream.compressor(level: level, memory: memory)
    var consumed = 0
    var produced = 0
    while true {
        let result = stream.step(UnsafeRawBufferPointer(rebasing: input[consumed...]),
                                 UnsafeMutableRawBufferPointer(rebasing: scratch[produced...]), action: BZ_FINISH)
        consumed += result.consumed
        produced += result.produced
        switch result.code {
        case BZ_STREAM_END:
            return [UInt8](UnsafeRawBufferPointer(rebasing: scratch[..<produced]))
        case BZ_FINISH_OK where produced < scratch.count && result.consumed + result.produced > 0:
            continue  // more to do, and room to do it in
        case BZ_FINISH_OK:
            // The manual's bound guarantees this cannot happen.
            throw .library(code: BZ_OUTBUFF_FULL)
        default:
            throw BZip2Error(libbz2: result.code) ?? .library(code: result.code)
        }
    }
}

/// Decodes `input` as a sequence of complete streams into `output`, as `bzip2 -d` would read it if it
/// were the whole input, and returns the number of bytes produced and of streams decoded.
///
/// Returns nil, without saying why, when that reading does not work: the input ends inside a stream,
/// a stream is damaged or is not a stream, or the output does not fit in `output`. The parallel
/// decompressor then decodes the same bytes again in order, and that decoding gives the reason.
func decodeCompleteStreams(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                           memory: BZ2Memory) -> (produced: Int, streams: Int)? {
    var consumed = 0
    var produced = 0
    var streams = 0
    while consumed < input.count {
        guard let stream = try? BZ2Stream.decompressor(memory: memory) else { return nil }
        while true {
            let result = stream.step(UnsafeRawBufferPointer(rebasing: input[consumed...]),
                                     UnsafeMutableRawBufferPointer(rebasing: output[produced...]))
            consumed += result.consumed
            produced += result.produced
            if result.code == BZ_STREAM_END { break }
            guard result.code == BZ_OK, result.consumed + result.produced > 0 else { return nil }
            // BZ_OK with room left in the output means libbz2 wants more input; there is none.
            if consumed == input.count && produced < output.count { return nil }
            // The output is full and the stream goes on: too big to keep.
            if produced == output.count { return nil }
        }
        streams += 1
    }
    return (produced, streams)
}
