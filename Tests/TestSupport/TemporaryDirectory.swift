// A private folder for one test, removed when the test is done.
//
// Like swift-system's withTemporaryFilePath and GRDB's per-test folder, but it can also be handed to
// the postgres user (chown), because the server refuses to run as root and CI runs the tests as root.

import Foundation

/// A fresh folder under the system's temporary directory (or `base`), mode 0755 so that the postgres
/// user can reach what a test puts in it. Removed by `deinit`.
public final class TemporaryDirectory: @unchecked Sendable {
    // @unchecked: the only stored property is immutable after init.
    public let path: String

    public init(prefix: String = "walferry-test", base: String? = nil) throws {
        let parent = base ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(parent)/\(prefix).XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw TestFailure("could not create a temporary directory in \"\(parent)\": \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
        chmod(path, 0o755)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// `path/name`.
    public func join(_ name: String) -> String { path + "/" + name }

    /// Makes a sub-folder and returns its path.
    @discardableResult
    public func makeDirectory(_ name: String, mode: Int = 0o755) throws -> String {
        let sub = join(name)
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        chmod(sub, mode_t(mode))
        return sub
    }
}

/// A failure in the test machinery itself (not in the code under test), with a readable message.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Writes `contents` to `path`, replacing it.
public func writeFile(_ path: String, _ contents: [UInt8]) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(contents)) else {
        throw TestFailure("could not create \"\(path)\"")
    }
}

/// The names in a folder, sorted.
public func listDirectory(_ path: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path).sorted()
}

/// Whether anything (a dangling symbolic link included) exists at `path`.
public func entryExists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}
