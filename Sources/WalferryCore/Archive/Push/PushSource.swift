// The file walferry-archive was given (`%p`): opened once, and for a segment its every page and record
// checked against its name before anything is written.
//
// Like `test -f SOURCE` in the documented `test ! -f DEST && cp SOURCE DEST`, except that a segment
// must also be sound (WALChecks.swift): a truncated, damaged or foreign file under pg_wal is refused
// with exit 4, never archived, since the server could not replay it from the archive.

import Glibc

/// SOURCE, opened, with what its first page says.
struct SourceFile {
    let fd: Int32
    let size: UInt64
    let mode: mode_t
    /// For segments and `.partial` files: the cluster the checked header names.
    let identity: ArchiveIdentity?
    /// For segments and `.partial` files: the file, mapped to be checked, and then copied from there.
    let mapping: MappedFile?
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
            mapping = nil
            return
        }
        let mapped: MappedFile
        do throws(Errno) {
            mapped = try MappedFile(fd: opened, size: UInt64(segmentCheckLength(fileSize: size)))
        } catch {
            close(opened)
            throw ArchiveFailure(.failure, "could not read file \"\(path)\": \(error)")
        }
        mapping = mapped
        do throws(WALSegmentProblem) {
            identity = try segmentIdentity(name, contents: mapped.bytes, size: size)
        } catch {
            close(opened)
            var hint: String?
            if case .records = error {
                hint = "The file in pg_wal is damaged: the server could not replay it. Check the storage for I/O errors, and do not copy the file into the archive by hand."
            }
            throw ArchiveFailure(.invalidWAL, "\"\(path)\" is not a valid WAL segment: \(error)", hint: hint)
        }
    }

    func changedSize(read: UInt64) -> ArchiveFailure {
        ArchiveFailure(.failure, "file \"\(path)\" changed size while it was read (\(size) bytes, then \(read))")
    }
}
