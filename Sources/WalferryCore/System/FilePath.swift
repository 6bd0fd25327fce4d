// A file-system path held as bytes: a data directory's file names need not be UTF-8, and what the
// server or the user passed must reach the system calls unchanged.
//
// Like swift-system's FilePath (byte storage, `appending`, `lastComponent`, `withCString`), without
// the dependency and its start-up cost: walferry needs a handful of operations, and keeps the path as
// typed (no normalisation of "//" or "./", which would change the paths its messages print and that
// pg_archivecleanup's listing is compared with). Symbolic links are never resolved here.

import Glibc

/// A path as bytes; printed (for messages) with invalid UTF-8 replaced.
public struct FilePath: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(_ string: String) { bytes = Array(string.utf8) }
    public init(bytes: some Sequence<UInt8>) { self.bytes = Array(bytes) }
    public init(stringLiteral value: String) { self.init(value) }

    /// The path as text, for messages.
    public var description: String { String(decoding: bytes, as: UTF8.self) }

    public var isEmpty: Bool { bytes.isEmpty }

    /// `self/name`; just `name` when this path is empty, and no second slash after a trailing one.
    public func appending(_ name: some Collection<UInt8>) -> FilePath {
        if bytes.isEmpty { return FilePath(bytes: name) }
        if bytes.last == UInt8(ascii: "/") { return FilePath(bytes: bytes + name) }
        return FilePath(bytes: bytes + [UInt8(ascii: "/")] + name)
    }

    public func appending(_ name: String) -> FilePath { appending(Array(name.utf8)) }

    /// The directory part ("." for a bare name, "/" for a name at the root).
    public var parent: FilePath {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == 0 { return "/" }
        return FilePath(bytes: bytes[..<slash])
    }

    /// The last component (everything after the last slash).
    public var lastComponent: [UInt8] {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return bytes }
        return Array(bytes[(slash + 1)...])
    }

    /// Calls `body` with the path as a NUL-terminated C string.
    public func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        var cString = bytes.map { CChar(bitPattern: $0) }
        cString.append(0)
        return cString.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return "".withCString(body) }  // never: count >= 1
            return body(base)
        }
    }
}
