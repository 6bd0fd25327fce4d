// The file walferry-archive was given (`%p`): opened once, and for a segment its first page checked
// against its name before anything is written.
//
// Like `test -f SOURCE` in the documented `test ! -f DEST && cp SOURCE DEST`, except that a segment
// must also be sound (WALChecks.swift): a truncated or foreign file under pg_wal is refused with exit
// 4, never archived.

import Glibc

/// SOURCE, opened, with what its first page says.
struct SourceFile {
    let fd: Int32
    let size: UInt64
    let mode: mode_t
    /// For segments and `.partial` files: the cluster the checked header names.
    let identity: ArchiveIdentity?
    let path: String

    init(path: String, name: WALFileName, console: Console) throws(ArchiveFailure) {
        self.path = path
        let opened = open(path, O_RDONLY | O_CLOEXEC)
        guard opened >= 0 else {
            let error = Errno.current
            var hint: String?
            if error == .noSuchFileOrDirectory && !path.contains("/") {
                hint = "SOURCE is %p (pg_wal/\(path)), not %f."
            }
            throw ArchiveFailure(.failure, "could not open file \"\(path)\": \(error)", hint: hint)
        }
        var info = stat()
        guard fstat(opened, &info) == 0 else {
            let error = Errno.current
            close(opened)
            throw ArchiveFailure(.failure, "could not stat file \"\(path)\": \(error)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(opened)
            throw ArchiveFailure(.usage, "\"\(path)\" is not a regular file")
        }
        fd = opened
        size = UInt64(info.st_size)
        mode = info.st_mode & 0o7777
        guard name.holdsWAL else {
            identity = nil
            return
        }
        var header = [UInt8](repeating: 0, count: WALLongPageHeader.size)
        let count = header.withUnsafeMutableBytes { (try? preadFully(opened, into: $0, at: 0)) ?? 0 }
        do throws(WALSegmentProblem) {
            identity = try segmentIdentity(name, firstBytes: header.prefix(count), size: size)
        } catch {
            close(opened)
            throw ArchiveFailure(.invalidWAL, "\"\(path)\" is not a valid WAL segment: \(error)")
        }
    }

    func changedSize(read: UInt64) -> ArchiveFailure {
        ArchiveFailure(.failure, "file \"\(path)\" changed size while it was read (\(size) bytes, then \(read))")
    }
}
