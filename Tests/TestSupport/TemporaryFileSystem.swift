// A file system of its own for one test: a tmpfs mounted on a fresh folder, unmounted by deinit, so
// on every way out of the test (a failed #require or a thrown error included; only a killed test
// process leaves it mounted).
//
// Like TemporaryDirectory, except that a tmpfs is mounted on the folder, so that what a test puts there
// is on another file system than everything else it made (each tmpfs mount has a device of its own,
// even when /tmp is a tmpfs too). Mounting needs root, as CI runs the tests; anywhere else the test
// fails, saying so, rather than skip.

import Foundation

public final class TemporaryFileSystem: @unchecked Sendable {
    // @unchecked: the stored properties are immutable after init.
    private let folder: TemporaryDirectory
    /// The mount point.
    public var path: String { folder.path }

    /// Mounts a tmpfs of `megabytes` (mode 0755) on a fresh folder.
    public init(prefix: String = "walferry-tmpfs", megabytes: Int = 64) throws {
        guard runningAsRoot else {
            throw TestFailure("this test mounts a tmpfs of its own and must run as root, as CI runs the tests (sudo swift test ...)")
        }
        folder = try TemporaryDirectory(prefix: prefix)
        guard mount("tmpfs", folder.path, "tmpfs", 0, "size=\(megabytes)m,mode=0755") == 0 else {
            throw TestFailure("could not mount a tmpfs on \"\(folder.path)\": \(String(cString: strerror(errno))) (a container needs CAP_SYS_ADMIN)")
        }
    }

    deinit {
        // Busy only if a process the test started still has a file open there: detach it then, so that
        // it goes when that process does, and the folder is removed either way.
        if umount(folder.path) != 0 { umount2(folder.path, 2 /* MNT_DETACH */) }
    }

    /// `path/name`.
    public func join(_ name: String) -> String { path + "/" + name }
}

/// The device (st_dev) of the file system that holds `path`.
public func fileSystemDevice(_ path: String) throws -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else { throw TestFailure("could not stat \"\(path)\": \(String(cString: strerror(errno)))") }
    return UInt64(info.st_dev)
}
