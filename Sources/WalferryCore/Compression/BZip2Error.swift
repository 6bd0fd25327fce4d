// Everything that can go wrong in the bzip2 engine, and the one place where libbz2's BZ_* codes become
// Swift errors.
//
// Like pgBackRest's bz2Error() (one translation function per C library, every code covered), but the
// data errors name what the user has in hand (a truncated file, a corrupt one, trailing garbage)
// instead of libbz2's "data error". Texts follow PostgreSQL's style: lower case, no final period; the
// caller puts the file name in front, as in `could not decompress file "x": compressed data is
// truncated`.

import CBZip2

/// Why a bzip2 compression or decompression failed.
public enum BZip2Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended inside a stream, or held no stream at all (empty input).
    case truncated
    /// The input goes on after its last complete stream with bytes that are not another stream. The
    /// `bzip2` command only warns about these; walferry refuses them, since an archive file with
    /// anything unexplained in it cannot be trusted.
    case trailingGarbage
    /// A stream is damaged: a block or stream CRC does not match, or a block cannot be decoded
    /// (BZ_DATA_ERROR).
    case corrupt
    /// The input does not start with a bzip2 stream header (BZ_DATA_ERROR_MAGIC on the first stream).
    case notBZip2
    /// libbz2 could not allocate its working memory (BZ_MEM_ERROR).
    case outOfMemory
    /// read(2) on the input failed.
    case read(Errno)
    /// write(2) on the output failed.
    case write(Errno)
    /// A worker thread could not be started (pthread_create).
    case threadStart(Errno)
    /// The compression level is not between 1 and 9.
    case invalidLevel(Int)
    /// The number of worker threads is not at least 1.
    case invalidJobs(Int)
    /// libbz2 returned a code that this engine's use of it should never produce (BZ_PARAM_ERROR,
    /// BZ_SEQUENCE_ERROR, BZ_CONFIG_ERROR, or a code of the high-level API): a bug here or in libbz2.
    case library(code: Int32)

    /// The error for a libbz2 result code, or nil for the codes that mean success (BZ_OK, BZ_RUN_OK,
    /// BZ_FLUSH_OK, BZ_FINISH_OK, BZ_STREAM_END).
    ///
    /// BZ_DATA_ERROR_MAGIC maps to `.notBZip2`; after a complete stream the decompressor reports it as
    /// `.trailingGarbage` instead. BZ_UNEXPECTED_EOF, which only the high-level BZ2_bzRead API returns,
    /// still means a truncated input.
    public init?(libbz2 code: Int32) {
        switch code {
        case BZ_OK, BZ_RUN_OK, BZ_FLUSH_OK, BZ_FINISH_OK, BZ_STREAM_END: return nil
        case BZ_MEM_ERROR: self = .outOfMemory
        case BZ_DATA_ERROR: self = .corrupt
        case BZ_DATA_ERROR_MAGIC: self = .notBZip2
        case BZ_UNEXPECTED_EOF: self = .truncated
        default: self = .library(code: code)  // BZ_SEQUENCE_ERROR, BZ_PARAM_ERROR, BZ_IO_ERROR, BZ_OUTBUFF_FULL, BZ_CONFIG_ERROR
        }
    }

    public var description: String {
        switch self {
        case .truncated: "compressed data is truncated"
        case .trailingGarbage: "trailing garbage after the compressed data"
        case .corrupt: "compressed data is corrupt (CRC mismatch or invalid block)"
        case .notBZip2: "compressed data is not in bzip2 format"
        case .outOfMemory: "out of memory in libbz2"
        case .read(let error): "could not read input: \(error)"
        case .write(let error): "could not write output: \(error)"
        case .threadStart(let error): "could not start a bzip2 worker thread: \(error)"
        case .invalidLevel(let level): "invalid bzip2 compression level \(level): must be between 1 and 9"
        case .invalidJobs(let jobs): "invalid number of bzip2 jobs \(jobs): must be at least 1"
        case .library(let code): "unexpected libbz2 result \(libbz2CodeName(code)) (\(code))"
        }
    }
}

/// The name of a libbz2 result code as bzlib.h spells it, such as "BZ_PARAM_ERROR".
func libbz2CodeName(_ code: Int32) -> String {
    switch code {
    case BZ_OK: "BZ_OK"
    case BZ_RUN_OK: "BZ_RUN_OK"
    case BZ_FLUSH_OK: "BZ_FLUSH_OK"
    case BZ_FINISH_OK: "BZ_FINISH_OK"
    case BZ_STREAM_END: "BZ_STREAM_END"
    case BZ_SEQUENCE_ERROR: "BZ_SEQUENCE_ERROR"
    case BZ_PARAM_ERROR: "BZ_PARAM_ERROR"
    case BZ_MEM_ERROR: "BZ_MEM_ERROR"
    case BZ_DATA_ERROR: "BZ_DATA_ERROR"
    case BZ_DATA_ERROR_MAGIC: "BZ_DATA_ERROR_MAGIC"
    case BZ_IO_ERROR: "BZ_IO_ERROR"
    case BZ_UNEXPECTED_EOF: "BZ_UNEXPECTED_EOF"
    case BZ_OUTBUFF_FULL: "BZ_OUTBUFF_FULL"
    case BZ_CONFIG_ERROR: "BZ_CONFIG_ERROR"
    default: "unknown code"
    }
}

/// libbz2's version string, for example "1.0.8, 13-Jul-2019".
public func libbz2Version() -> String { String(cString: BZ2_bzlibVersion()) }
