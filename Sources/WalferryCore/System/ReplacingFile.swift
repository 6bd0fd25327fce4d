// Atomic delivery of a file that may replace an existing one: written under a temporary name, then
// renamed over its final name.
//
// Like `cp SOURCE .tmp && mv .tmp DEST`, and like PostgreSQL's durable_rename when asked to be
// durable. It is the replacing counterpart of DurableFile.swift's TemporaryFile, which publishes
// with link(2) and never replaces (right for an archive, wrong for restore_command's %p, which the
// server expects the command to create or replace). It shares TemporaryFile's conventions:
// - the temporary name is fixed per final name (`.NAME.walferry-tmp`), created with O_EXCL and
//   O_NOFOLLOW, held under flock(2) while written, and removed by a later run once nobody holds it
//   (a writer killed with SIGKILL leaves it behind);
// - the temporary entry is registered with Interruption, so a signal removes it.
// It differs in that:
// - the last step is renameat(2), so a reader sees the old file or the complete new one, never a
//   partial one, and an existing final name is replaced;
// - the final name is given at the end and may be in another directory of the same file system
//   (a prefetch spool entry is named after the checksum of its contents, and is delivered by rename
//   into pg_wal);
// - durability is the caller's choice: fsync of the file before and of the directory after the
//   rename, or neither where the reader makes the file durable itself (the startup process renames
//   RECOVERYXLOG with its own durable_rename, which fsyncs it first).

import Glibc

/// A file being written under a temporary name, to be renamed over its final name.
public final class ReplacingFile {
    public let directory: DirectoryHandle
    public let temporaryName: String
    public let fd: Int32
    private var finished = false

    /// Creates `.NAME.walferry-tmp` in `directory` with `mode` (before the umask), replacing a stale
    /// one whose writer is gone, and locks it.
    public init(in directory: DirectoryHandle, temporaryFor name: String, mode: mode_t) throws(PublishError) {
        self.directory = directory
        temporaryName = TemporaryFile.temporaryName(for: name)
        fd = try TemporaryFile.createLocked(in: directory, name: temporaryName, access: O_RDWR, mode: mode)
    }

    deinit {
        if !finished { discard() }
        close(fd)
    }

    /// Appends bytes. The corresponding C function is `write`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        if let error = writeAll(fd, bytes) { throw error }
    }

    /// Makes the contents durable. The corresponding C function is `fsync`.
    public func sync() throws(Errno) {
        try syncDescriptor(fd)
    }

    /// Renames the file over `finalName` in `target` (by default its own directory), which must be on
    /// the same file system. With `durable`, the file is fsynced before and the target directory
    /// after, as PostgreSQL's durable_rename does. The corresponding C function is `renameat`.
    public func replace(_ finalName: String, in target: DirectoryHandle? = nil, durable: Bool) throws(PublishError) {
        let target = target ?? directory
        if durable {
            do throws(Errno) {
                try sync()
            } catch {
                throw .failed(step: "fsync", error)
            }
        }
        guard renameat(directory.fd, temporaryName, target.fd, finalName) == 0 else {
            throw .failed(step: "rename", .current)
        }
        finished = true
        Interruption.unregister()
        if durable {
            do throws(Errno) {
                try target.sync()
            } catch {
                throw .directorySync(error)
            }
        }
    }

    /// Removes the temporary file (on failure paths; also done by deinit when it was not renamed).
    public func discard() {
        guard !finished else { return }
        finished = true
        _ = unlinkat(directory.fd, temporaryName, 0)
        Interruption.unregister()
    }
}
