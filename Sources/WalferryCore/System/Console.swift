// Standard output and standard error, written with write(2).
//
// Like PostgreSQL's pg_log_error / pg_log_info for the message shape (`program: error: text`, then
// `program: hint: text`), but without stdio: stderr lines go out whole and at once, so lines from two
// tools that share the server log do not interleave mid-line, and stdout is buffered in large chunks
// because a dry run over a big archive prints tens of thousands of lines.

import Glibc

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR. Errors (a closed pipe, a full disk
/// behind a redirection) are returned, never trapped on.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Errno? {
    var offset = 0
    while offset < bytes.count {
        guard let base = bytes.baseAddress else { return nil }
        let written = write(fd, base + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            return .current
        }
        offset += written
    }
    return nil
}

/// The program's messages on standard error, in PostgreSQL's style.
public struct Console: Sendable {
    /// The name every line starts with, such as `walferry-cleanup`.
    public let program: String

    public init(program: String) { self.program = program }

    /// `program: error: message`
    public func error(_ message: String) { line("error: " + message) }

    /// `program: warning: message`
    public func warning(_ message: String) { line("warning: " + message) }

    /// `program: detail: message`: a full sentence that explains the error before it.
    public func detail(_ message: String) { line("detail: " + message) }

    /// `program: hint: message`: a full sentence that names the user's likely mistake.
    public func hint(_ message: String) { line("hint: " + message) }

    /// `program: message`: debug and progress lines carry no level word, as in PostgreSQL's tools.
    public func info(_ message: String) { line(message) }

    /// The hint that ends every usage error.
    public var tryHelpHint: String { "Try \"\(program) --help\" for more information." }

    private func line(_ text: String) {
        var message = program + ": " + text + "\n"
        message.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }
}

/// Standard output, buffered; `flush()` must be called before the program exits.
public final class StandardOutput {
    private var buffer: [UInt8] = []
    private let limit = 64 * 1024
    /// The first write error, kept so that the caller can report it once.
    public private(set) var failure: Errno?

    public init() { buffer.reserveCapacity(limit) }

    /// Appends raw bytes (file names are not always UTF-8).
    public func write(_ bytes: some Collection<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= limit { flush() }
    }

    public func write(_ text: String) { write(text.utf8) }

    public func flush() {
        guard !buffer.isEmpty else { return }
        let error = buffer.withUnsafeBytes { writeAll(1, $0) }
        if failure == nil { failure = error }
        buffer.removeAll(keepingCapacity: true)
    }
}
