// A file system that fails on command for one test: Tests/FaultFS/faultfs.py (a FUSE passthrough over
// a backing folder) mounted on a fresh folder, its faults set while the test runs, unmounted and its
// daemon ended by deinit, so on every way out of the test (only a killed test process leaves it).
//
// Like TemporaryFileSystem, except that the file system is a FUSE daemon that injects the faults a
// test sets (errors at a byte offset, failing fsyncs, ESTALE, short, lost and flipped writes, flipped
// reads, refused calls, hung calls), that what it stores is also reachable past the faults under
// `backing`, and that it needs /dev/fuse, fuse3 and python3-fusepy (scripts/setup installs them).
// Mounting needs root, as CI runs the tests; anywhere else the test fails, saying so, rather than skip.

import Foundation

/// One rule of faultfs.py: `op` (fusepy operation names) on entries whose last path component matches
/// the glob `name` fails as `fault` says, from byte `offset` on for reads and writes, `times` times
/// (nil: every time). See Tests/FaultFS/faultfs.py.
public struct Fault: Sendable, Encodable {
    public let op: [String]
    public let name: String
    public let fault: String
    public let offset: Int?
    public let times: Int?

    public init(_ op: [String], name: String = "*", fault: String, offset: Int? = nil, times: Int? = nil) {
        self.op = op
        self.name = name
        self.fault = fault
        self.offset = offset
        self.times = times
    }

    /// `op` fails with the errno `code` ("EIO", "ENOSPC", "ESTALE", "EPERM"...); for read and write,
    /// once the call reaches byte `offset` (a write across it stores the bytes before it).
    public static func error(_ code: String, on op: String..., name: String = "*", offset: Int? = nil, times: Int? = nil) -> Fault {
        Fault(op, name: name, fault: code, offset: offset, times: times)
    }
    /// Writes store and report half of their bytes.
    public static func shortWrites(name: String = "*", times: Int? = nil) -> Fault {
        Fault(["write"], name: name, fault: "short", times: times)
    }
    /// Writes that reach byte `offset` report success and store nothing.
    public static func lostWrites(name: String = "*", offset: Int = 0, times: Int? = nil) -> Fault {
        Fault(["write"], name: name, fault: "lost", offset: offset, times: times)
    }
    /// The byte at `offset` is inverted in what `op` ("read" or "write") carries.
    public static func flip(on op: String, name: String = "*", offset: Int) -> Fault {
        Fault([op], name: name, fault: "flip", offset: offset)
    }
    /// `op` blocks until the faults are set again, or its caller gets a signal (as an NFS call does).
    public static func hang(on op: String, name: String = "*", offset: Int? = nil) -> Fault {
        Fault([op], name: name, fault: "hang", offset: offset)
    }
}

public final class FaultFileSystem: @unchecked Sendable {
    // @unchecked: used by the one test that made it; the daemon is only touched by init and deinit.
    private let folder: TemporaryDirectory
    private let daemon: RunningProcess
    /// The mount point, where the tools meet the faults.
    public let path: String
    /// The folder that holds what the file system stores, reachable without faults.
    public let backing: String
    private let control: String

    /// The faultfs.py script of this checkout.
    public static let script = packageRoot + "/Tests/FaultFS/faultfs.py"

    /// Mounts faultfs.py over a fresh backing folder, with no fault set, and waits (10 s at most)
    /// until it is mounted.
    public init(prefix: String = "walferry-faultfs") throws {
        guard runningAsRoot else {
            throw TestFailure("this test mounts a FUSE file system of its own and must run as root, as CI runs the tests (sudo swift test ...)")
        }
        folder = try TemporaryDirectory(prefix: prefix)
        backing = try folder.makeDirectory("backing")
        path = try folder.makeDirectory("mount")
        control = try folder.makeDirectory("control")
        // /usr/bin/python3: Debian's, which sees python3-fusepy (a pyenv or venv python3 does not).
        daemon = try RunningProcess("/usr/bin/python3", [Self.script, backing, path, control])
        do {
            try waitUntil("faultfs is mounted on \(path)", timeout: 10) {
                if let ended = try daemon.poll() { throw TestFailure("faultfs.py ended before it was mounted (needs fuse3, python3-fusepy and /dev/fuse; scripts/setup): \(ended)") }
                return try isMountPoint(path, type: "fuse.faultfs")
            }
        } catch {
            unmount()
            throw error
        }
    }

    deinit {
        unmount()
    }

    /// Releases every hung call, unmounts (lazily if a process still has a file open there) and ends
    /// the daemon (killed if it has not ended 5 s after the unmount).
    private func unmount() {
        try? setFaults([])
        if (try? runProcess("/usr/bin/fusermount3", ["-u", path]))?.status != 0 {
            _ = try? runProcess("/usr/bin/fusermount3", ["-u", "-z", path])
        }
        if (try? daemon.wait(timeout: 5)) == nil { daemon.signal(SIGKILL); _ = try? daemon.wait() }
    }

    /// `path/name`, through the faults.
    public func join(_ name: String) -> String { path + "/" + name }

    /// Replaces the faults (an empty list clears them and releases every hung call). Takes effect at
    /// the next call the file system receives.
    public func setFaults(_ faults: [Fault]) throws {
        let data = try JSONEncoder().encode(faults)
        let temporary = control + "/faults.json.new"
        guard FileManager.default.createFile(atPath: temporary, contents: data),
              rename(temporary, control + "/faults.json") == 0 else {
            throw TestFailure("could not set the faults of \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Clears the faults.
    public func clearFaults() throws { try setFaults([]) }

    /// The faults that fired so far, as "OP FAULT PATH" lines (PATH from the mount's root); cleared.
    public func takeFired() throws -> [String] {
        let log = control + "/fired.log"
        guard let data = FileManager.default.contents(atPath: log) else { return [] }
        try FileManager.default.removeItem(atPath: log)
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Waits until a call hangs on a `hang` fault.
    public func waitUntilHanging(timeout: Double = 10) throws {
        try waitUntil("a call hangs on \(path)", timeout: timeout) { entryExists(control + "/hanging") }
    }
}

/// Whether `path` is a mount point of file-system type `type` in this process's mount namespace.
public func isMountPoint(_ path: String, type: String) throws -> Bool {
    let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
    // "36 35 0:40 / /tmp/x rw,nosuid - fuse.faultfs faultfs rw,...": field 5 the mount point (spaces
    // escaped as \040), the type after " - ".
    let escaped = path.replacingOccurrences(of: " ", with: "\\040")
    return mounts.split(separator: "\n").contains { line in
        let fields = line.split(separator: " ")
        guard fields.count > 4, fields[4] == escaped, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return false }
        return fields[dash + 1] == type
    }
}

/// A SHA-256 of a file's bytes as hex, through sha256sum (nil when the file does not exist).
public func fileDigest(_ path: String) throws -> String? {
    guard entryExists(path) else { return nil }
    let outcome = try runProcess("/usr/bin/sha256sum", [path])
    guard outcome.status == 0, let digest = outcome.stdout.split(separator: " ").first else {
        throw TestFailure("sha256sum \(path) failed: \(outcome)")
    }
    return String(digest)
}
