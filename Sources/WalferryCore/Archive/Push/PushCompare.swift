// walferry-archive's answer to a file archived before: the same WAL (in either form) is success once
// it is durable; different contents are a conflict naming the first differing byte, and the archived
// copy is left as it is.
//
// Like `cmp SOURCE DEST` (and `bunzip2 -c DEST | cmp SOURCE -` for the compressed form), except that a
// difference is reported with its offset and an identical copy is fsynced before it counts as archived
// (the run that wrote it may have died before its fsync).

import Glibc

extension Archiver {
    /// True when `name` exists in the archive with the same WAL as SOURCE (decompressed for `.bz2`);
    /// false when it does not exist. Different contents throw `.conflict`. An identical file is made
    /// durable before returning true.
    func compareExisting(_ name: String, in archive: ArchiveDirectory, with source: SourceFile) throws(ArchiveFailure) -> Bool {
        let path = "\(archive.path)/\(name)"
        let info: stat?
        do {
            info = try archive.handle.status(of: name)
        } catch {
            throw ArchiveFailure(.failure, "could not stat file \"\(path)\": \(error)")
        }
        guard let info else { return false }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ArchiveFailure(.conflict, "archive file \"\(path)\" exists and is not a regular file")
        }
        let fd: Int32
        do {
            fd = try archive.open(name)
        } catch {
            throw ArchiveFailure(.failure, "could not open file \"\(path)\": \(error)")
        }
        defer { close(fd) }

        let difference: UInt64?
        if name.hasSuffix(".bz2") {
            let comparer = StreamComparer(source: source)
            do {
                _ = try withDiscardedOutput { (null) throws(BZip2Error) in
                    try BZip2.decompress(from: fd, to: null, jobs: request.jobs) { comparer.consume($0) }
                }
            } catch {
                throw ArchiveFailure(.conflict,
                                     "archive file \"\(path)\" already exists and cannot be decompressed: \(error)")
            }
            if let failure = comparer.readError {
                throw ArchiveFailure(.failure, "could not read file \"\(request.source)\": \(failure)")
            }
            difference = comparer.firstDifference ?? (comparer.offset == source.size ? nil : min(comparer.offset, source.size))
        } else {
            difference = try comparePlain(fd, path: path, size: UInt64(info.st_size), source: source)
        }
        if let difference {
            throw ArchiveFailure(.conflict,
                                 "archive file \"\(path)\" already exists with different contents (first difference at byte \(difference))",
                                 hint: name.hasSuffix(".history")
                                    ? "Timeline history files are never overwritten; is another cluster archiving here?"
                                    : "The archived copy was left as it is. Is another cluster archiving to the same place?")
        }
        do throws(Errno) {
            try syncDescriptor(fd)
            try archive.handle.sync()
        } catch {
            throw ArchiveFailure(.failure, "could not fsync file \"\(path)\": \(error)")
        }
        return true
    }

    func comparePlain(_ fd: Int32, path: String, size: UInt64, source: SourceFile) throws(ArchiveFailure) -> UInt64? {
        let mine = UnsafeMutableRawBufferPointer.allocate(byteCount: archiveChunkSize, alignment: 16)
        let theirs = UnsafeMutableRawBufferPointer.allocate(byteCount: archiveChunkSize, alignment: 16)
        defer { mine.deallocate(); theirs.deallocate() }
        var offset: UInt64 = 0
        while true {
            let count: Int, sourceCount: Int
            do throws(Errno) {
                count = try readFully(fd, into: theirs)
            } catch {
                throw ArchiveFailure(.failure, "could not read file \"\(path)\": \(error)")
            }
            do throws(Errno) {
                sourceCount = try preadFully(source.fd, into: mine, at: offset)
            } catch {
                throw ArchiveFailure(.failure, "could not read file \"\(request.source)\": \(error)")
            }
            let common = min(count, sourceCount)
            if let index = firstDifference(UnsafeRawBufferPointer(rebasing: mine[..<sourceCount]), UnsafeRawBufferPointer(rebasing: theirs[..<count])) {
                return offset + UInt64(index)
            }
            offset += UInt64(common)
            if count != sourceCount { return offset }
            if count < archiveChunkSize { return size == source.size ? nil : offset }
        }
    }
}

/// Compares decompressed bytes, arriving in order, with SOURCE read at the same offsets.
private final class StreamComparer {
    let source: SourceFile
    var offset: UInt64 = 0
    var firstDifference: UInt64?
    var readError: Errno?
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: archiveChunkSize, alignment: 16)

    init(source: SourceFile) { self.source = source }

    deinit { buffer.deallocate() }

    func consume(_ bytes: UnsafeRawBufferPointer) {
        defer { offset += UInt64(bytes.count) }
        guard firstDifference == nil, readError == nil else { return }
        var done = 0
        while done < bytes.count {
            let want = min(bytes.count - done, archiveChunkSize)
            let got: Int
            do throws(Errno) {
                got = try preadFully(source.fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset + UInt64(done))
            } catch {
                readError = error
                return
            }
            let theirs = UnsafeRawBufferPointer(rebasing: bytes[done..<done + want])
            if let index = WalferryCore.firstDifference(UnsafeRawBufferPointer(rebasing: buffer[..<got]), theirs) {
                firstDifference = offset + UInt64(done + index)
                return
            }
            if got < want {
                firstDifference = offset + UInt64(done + got)
                return
            }
            done += want
        }
    }
}

/// /dev/null opened for writing, for decompressing only to look at the bytes.
func withDiscardedOutput<T, E: Error>(_ body: (Int32) throws(E) -> T) throws(E) -> T {
    let fd = open("/dev/null", O_WRONLY | O_CLOEXEC)
    defer { if fd >= 0 { close(fd) } }
    return try body(fd)
}
