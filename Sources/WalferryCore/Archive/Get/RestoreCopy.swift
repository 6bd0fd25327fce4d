// walferry-restore's copy of one archived file into a temporary file, and the checks it must pass
// before it is delivered: shared by the foreground fetch and the prefetch worker.
//
// Like `cp ARCHIVE/%f TMP` (or `bunzip2 -c ARCHIVE/%f.bz2 > TMP`), except that what was written is
// read back from the temporary file and checked (WALChecks.swift) before anyone renames it into place:
// a segment against its name, page by page and record by record as the server will read it, and
// against the archive's identity; a timeline history file's syntax. A `.bz2` file's every stream CRC
// is checked by the decompressor on the way.

import Glibc

/// The unit a plain file is copied in when it cannot be copied inside the kernel.
private let chunkSize = 1 << 20

/// What a verified copy held.
struct CopiedContent {
    let size: UInt64
    let checksum: UInt32
}

/// Copies (or decompresses) the archive file open as `fd` into `temporary`, then verifies what was
/// written: a segment against its name and the archive identity, a timeline history file's syntax.
/// Shared by the foreground fetch and the prefetch worker.
/// Without `checksum` (the foreground, which needs none), a plain file is copied inside the kernel
/// (sendfile), as cp does with copy_file_range: no pass through user memory, which would make the
/// copy cost twice cp's; the returned checksum is then 0.
func copyVerified(from member: ArchiveDirectory.Member, path: String, compressed: Bool, to temporary: ReplacingFile, tempPath: String,
                  wanted: WALFileName, owner: ArchiveOwner, archivePath: String, jobs: Int,
                  checksum: Bool = true) throws(RestoreFailure) -> CopiedContent {
    let fd = member.fd, size = member.size
    var crc = CRC32C()
    var total: UInt64 = 0
    if !compressed && !checksum {
        // sendfile moves at most 0x7ffff000 bytes a call; it fails at once (EINVAL, ENOSYS) where the
        // pair of files does not support it, and the loop below then copies the rest.
        var offset = off_t(0)
        while UInt64(offset) < size {
            let sent = sendfile(temporary.fd, fd, &offset, min(Int(size - UInt64(offset)), 0x7fff_f000))
            if sent > 0 { continue }
            if sent == 0 { break }  // the file shrank: caught by the size check below
            let error = Errno.current
            if error == .interrupted { continue }
            if error.rawValue == EINVAL || error.rawValue == ENOSYS { break }
            if error.rawValue == EIO || error.rawValue == ESTALE {
                throw RestoreFailure(.failure, "could not read file \"\(path)\": \(error)")
            }
            throw RestoreFailure(.failure, "could not copy file \"\(path)\" to \"\(tempPath)\": \(error)")
        }
        total = UInt64(offset)
        if lseek(fd, offset, SEEK_SET) < 0 {
            throw RestoreFailure(.failure, "could not seek in file \"\(path)\": \(Errno.current)")
        }
    }
    if compressed {
        do {
            let result = try BZip2.decompress(from: fd, to: temporary.fd, jobs: jobs) { crc.update($0) }
            total = result.bytesOut
        } catch {
            switch error {
            case .read(let errno): throw RestoreFailure(.failure, "could not read file \"\(path)\": \(errno)")
            case .write(let errno): throw RestoreFailure(.failure, "could not write file \"\(tempPath)\": \(errno)")
            case .truncated, .trailingGarbage, .corrupt, .notBZip2:
                throw RestoreFailure(.invalid, "could not decompress file \"\(path)\": \(error)",
                                     hint: "The archived copy is damaged; restore it from another copy of the archive.")
            default: throw RestoreFailure(.failure, "could not decompress file \"\(path)\": \(error)")
            }
        }
    } else if total < size {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count: Int
            do throws(Errno) {
                count = try readFully(fd, into: buffer)
            } catch {
                throw RestoreFailure(.failure, "could not read file \"\(path)\": \(error)")
            }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            crc.update(chunk)
            do throws(Errno) {
                try temporary.write(chunk)
            } catch {
                throw RestoreFailure(.failure, "could not write file \"\(tempPath)\": \(error)")
            }
            total += UInt64(count)
            if count < chunkSize { break }
        }
    }
    if !compressed && total != size {
        throw RestoreFailure(.failure, "file \"\(path)\" changed size while it was read (\(size) bytes, then \(total))")
    }

    // Verify what was written, from the temporary file itself.
    if wanted.holdsWAL {
        // Mapped rather than read: the pages are in the cache, just written, and the whole segment is
        // walked (every page header and record CRC), at the cost of one pass of CRC-32C.
        let mapping: MappedFile
        do throws(Errno) {
            mapping = try MappedFile(fd: temporary.fd, size: UInt64(segmentCheckLength(fileSize: total)))
        } catch {
            throw RestoreFailure(.failure, "could not read file \"\(tempPath)\": \(error)")
        }
        try verifySegment(name: wanted, contents: mapping.bytes, size: total, owner: owner, path: path, archivePath: archivePath)
    } else if wanted.kind == .timelineHistory {
        guard total <= maximumTimelineHistorySize else {
            throw RestoreFailure(.invalid, "timeline history file \"\(path)\" is \(total) bytes, too large to be one")
        }
        var bytes = [UInt8](repeating: 0, count: Int(total))
        do throws(Errno) {
            _ = try bytes.withUnsafeMutableBytes { buffer in Result { () throws(Errno) in try preadFully(temporary.fd, into: buffer, at: 0) } }.get()
        } catch {
            throw RestoreFailure(.failure, "could not read file \"\(tempPath)\": \(error)")
        }
        if let problem = timelineHistoryProblem(bytes, timeline: wanted.timeline) {
            throw RestoreFailure(.invalid, "invalid timeline history file \"\(path)\": \(problem)")
        }
    } else if total == 0 {
        throw RestoreFailure(.invalid, "archive file \"\(path)\" is empty")
    }
    return CopiedContent(size: total, checksum: crc.value)
}

/// Checks a `size`-byte segment (`contents`: see segmentCheckLength) against its name (size, first
/// page, every page and record), and its cluster against the archive's (or, in an archive without an
/// identity record, the data directory's).
func verifySegment(name: WALFileName, contents: UnsafeRawBufferPointer, size: UInt64, owner: ArchiveOwner,
                   path: String, archivePath: String) throws(RestoreFailure) {
    do throws(ArchivedSegmentProblem) {
        try checkArchivedSegment(name, contents: contents, size: size, belongsTo: owner)
    } catch {
        switch error {
        case .invalid(let problem):
            throw RestoreFailure(.invalid, "archive file \"\(path)\" is not a valid WAL segment \"\(name)\": \(problem)",
                                 hint: "The archived copy is damaged or misnamed; restore it from another copy of the archive.")
        case .foreign(let found):
            switch owner {
            case .identity(let identity):
                throw RestoreFailure(.invalid,
                                     "archive file \"\(path)\" (\(found)) does not belong in archive \"\(archivePath)\" (\(identity))",
                                     hint: "Was it copied into the archive by hand, from another cluster?")
            case .systemIdentifier(let own):
                throw RestoreFailure(.invalid,
                                     "archive file \"\(path)\" (\(found)) does not belong to this data directory (system identifier \(own.map(String.init) ?? "unknown"))",
                                     hint: "Is restore_command pointing at another cluster's archive?")
            }
        }
    }
}

/// Opens `name` in the archive for copying: nil when it does not exist.
func openArchiveMember(_ name: String, in archive: ArchiveDirectory) throws(RestoreFailure) -> ArchiveDirectory.Member? {
    let path = archive.path(of: name)
    do throws(ArchiveDirectory.MemberError) {
        return try archive.openMember(name)
    } catch {
        switch error {
        case .open(let errno):
            throw RestoreFailure(.failure, "could not open file \"\(path)\": \(errno)",
                                 hint: errno.rawValue == ELOOP ? "walferry-restore does not follow symbolic links in the archive." : nil)
        case .stat(let errno):
            throw RestoreFailure(.failure, "could not stat file \"\(path)\": \(errno)")
        case .notRegular:
            throw RestoreFailure(.invalid, "archive file \"\(path)\" is not a regular file")
        }
    }
}
