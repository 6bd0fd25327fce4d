// walferry-archive's work: copy one WAL file from pg_wal into the archive, for archive_command.
//
// Like `test ! -f DEST && cp SOURCE DEST` (the documented example) and PostgreSQL's basic_archive,
// but durable, atomic, verified and strict:
// - the copy goes to a temporary name in the archive directory, is fsynced, read back past the page
//   cache and compared byte for byte with SOURCE (for `.bz2`: decompressed and checked against the
//   CRC-32C taken while SOURCE was compressed), then published with link(2), which never replaces a
//   file, and the directory is fsynced (basic_archive renames, which would replace a file that
//   appeared meanwhile, and does not verify);
// - a file archived before with identical contents (also in the other form, with or without `.bz2`)
//   is success after making sure it is durable; different contents are an error naming the offset of
//   the first difference, and nothing is replaced;
// - a segment's header is checked against its name, its size and the archive's identity record
//   (ArchiveIdentity.swift), so that a truncated file, a file of another cluster or an unmounted
//   archive share is refused instead of archived;
// - every failure exits with a status from 1 to 125, which the archiver retries; an interruption
//   removes the temporary file and exits 1 rather than dying by the signal.

import Glibc

/// The exit statuses of walferry-archive. All failures are below 126: the archiver retries them.
public enum ArchiveExitStatus: Int32, Sendable {
    /// The file is in the archive and durable (copied now, or found there with identical contents).
    case success = 0
    /// An I/O error (reading SOURCE, writing or syncing the archive, a full file system), a missing
    /// SOURCE or archive directory, or an interruption.
    case failure = 1
    /// Bad arguments: not a WAL file name, DEST not named after SOURCE, an unknown option.
    case usage = 2
    /// DEST (or the same file in the other form) exists with different contents; it was left as it is.
    case conflict = 3
    /// SOURCE is not a sound WAL segment (size, magic, page address or timeline against its name).
    case invalidWAL = 4
    /// The archive belongs to another cluster, or its identity record is missing where this cluster
    /// wrote one before (an unmounted share).
    case identity = 5
    /// The copy read back from the archive does not match what was read from SOURCE.
    case verification = 6
    /// Another walferry-archive is writing the same file right now.
    case busy = 7
}

/// What walferry-archive was asked to do.
public struct ArchiveRequest: Sendable {
    /// `%p`: the file to archive, relative to the data directory (the working directory).
    public var source: String
    /// The archive path: the archive directory and `%f`, or `%f.bz2` to compress.
    public var destination: String
    /// The archived file's permission bits; nil for SOURCE's.
    public var mode: mode_t?
    /// Compression threads for `.bz2`.
    public var jobs: Int = BZip2.defaultJobs
    /// Where the published bytes are read back from for verification.
    public var verification: Verification = .storage

    /// Where verification reads the copy back from.
    public enum Verification: String, Sendable, CaseIterable {
        /// From the storage: the file's cached pages are dropped first (local disks, NFS), so the
        /// read-back sees what the file system holds. Costs a second read of every segment.
        case storage
        /// From the page cache: checks everything walferry and the kernel did with the bytes, but not
        /// what the device or the NFS server stored. About half the I/O.
        case cache
    }

    public init(source: String, destination: String) {
        self.source = source
        self.destination = destination
    }
}

/// A failure: the exit status, the message, and an optional hint.
struct ArchiveFailure: Error {
    let status: ArchiveExitStatus
    let message: String
    var hint: String?
}

/// Archives one file, printing PostgreSQL-style messages, and returns the exit status.
public func runArchive(_ request: ArchiveRequest, console: Console) -> ArchiveExitStatus {
    do throws(ArchiveFailure) {
        try Archiver(request: request, console: console).run()
        return .success
    } catch {
        console.error(error.message)
        if let hint = error.hint { console.hint(hint) }
        return error.status
    }
}


private let chunkSize = 4 << 20

private struct Archiver {
    let request: ArchiveRequest
    let console: Console

    func run() throws(ArchiveFailure) {
        let sourceName = splitPath(request.source).name
        let (archivePath, destinationName) = splitPath(request.destination)
        let name = try checkNames(sourceName: sourceName, destinationName: destinationName)
        let compress = destinationName.hasSuffix(".bz2")

        let archive: DirectoryHandle
        do {
            archive = try DirectoryHandle(path: archivePath)
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not open archive directory \"\(archivePath)\": \(error)",
                                 hint: error == .noSuchFileOrDirectory ? "Is the archive file system mounted?" : nil)
        }

        let source = try SourceFile(path: request.source, name: name, console: console)
        defer { close(source.fd) }

        if let facts = source.facts { try checkIdentity(facts, archive: archive) }

        // Archived before? Then it must be the same WAL, in either form.
        for candidate in [destinationName, compress ? String(destinationName.dropLast(4)) : destinationName + ".bz2"] {
            if try compareExisting(candidate, in: archive, with: source) {
                let form = candidate == destinationName ? "" : " (as \"\(archivePath)/\(candidate)\")"
                console.info("archive file \"\(archivePath)/\(destinationName)\" already exists with identical contents\(form)")
                return
            }
        }

        let mode = request.mode ?? source.mode
        let temporary: TemporaryFile
        do {
            temporary = try TemporaryFile(in: archive, finalName: destinationName, mode: 0o600)
        } catch {
            throw publishFailure(error, archive: archive, name: destinationName)
        }
        let tempPath = "\(archivePath)/\(temporary.temporaryName)"

        if compress {
            let checksum = try copyCompressed(source, to: temporary, tempPath: tempPath)
            try syncTemporary(temporary, mode: mode, tempPath: tempPath)
            try verifyCompressed(temporary, expected: checksum, length: source.size, tempPath: tempPath)
        } else {
            let mapping = try mapSource(source)
            do throws(Errno) {
                try temporary.write(mapping.bytes)
            } catch {
                throw ArchiveFailure(status: .failure, message: "could not write file \"\(tempPath)\": \(error)")
            }
            try syncTemporary(temporary, mode: mode, tempPath: tempPath)
            try verifyPlain(temporary, against: mapping.bytes, tempPath: tempPath)
        }

        do {
            try temporary.publish()
        } catch .exists {
            // Published by someone else between our check and our link: the same rules apply.
            if try compareExisting(destinationName, in: archive, with: source) { return }
            throw ArchiveFailure(status: .conflict, message: "archive file \"\(archivePath)/\(destinationName)\" appeared while it was being written")
        } catch {
            throw publishFailure(error, archive: archive, name: destinationName)
        }
    }

    // MARK: - Names

    func checkNames(sourceName: String, destinationName: String) throws(ArchiveFailure) -> WALFileName {
        // Both file names must be WAL names, and DEST's the same as SOURCE's: so neither name can lead
        // out of its directory. The directories are the DBA's configuration and used as given.
        guard let name = WALFileName(sourceName), name.compression == nil else {
            var hint = "SOURCE is %p: the path of a segment, .partial, .backup or .history file under pg_wal."
            if sourceName == "RECOVERYXLOG" || sourceName == "RECOVERYHISTORY" {
                hint = "\"\(sourceName)\" is restore_command's %p; archive_command takes walferry-archive, restore_command walferry-restore."
            }
            throw ArchiveFailure(status: .usage, message: "\"\(request.source)\" is not a WAL file name", hint: hint)
        }
        guard destinationName == sourceName || destinationName == sourceName + ".bz2" else {
            var hint = "DEST must end with %f, or %f.bz2 to compress: walferry-archive %p /mnt/archive/%f"
            if let other = WALFileName(destinationName), other.uncompressed == name, other.compression != nil {
                hint = "walferry-archive compresses with bzip2 only: use %f.bz2."
            } else if destinationName.isEmpty || (try? fileType(atPath: request.destination)) == .directory {
                hint = "DEST is the archived file's path, not the archive directory: walferry-archive %p /mnt/archive/%f"
            } else if destinationName.hasPrefix("pg_wal") || request.destination.contains("/pg_wal/") {
                hint = "DEST ends with %f (the file name), not %p (its path under pg_wal)."
            }
            throw ArchiveFailure(status: .usage,
                                 message: "archive file name \"\(destinationName)\" does not match \"\(sourceName)\"", hint: hint)
        }
        return name
    }

    // MARK: - Identity

    func checkIdentity(_ facts: WALSegmentFacts, archive: DirectoryHandle) throws(ArchiveFailure) {
        let recordPath = "\(archive.path)/\(ArchiveIdentity.fileName)"
        let segment = ArchiveIdentity(facts)
        for _ in 0..<2 {
            if let existing = try readIdentity(archive: archive, recordPath: recordPath) {
                guard existing == segment else {
                    throw ArchiveFailure(status: .identity,
                                         message: "WAL file \"\(request.source)\" (\(segment)) does not belong in archive \"\(archive.path)\" (\(existing))",
                                         hint: existing.systemIdentifier == segment.systemIdentifier
                                            ? "A new PostgreSQL version or segment size needs a new archive directory."
                                            : "Is archive_command pointing at another cluster's archive?")
                }
                return
            }
            // No record: a new archive, unless this data directory has started one here before.
            let inDataDirectory = KnownArchives.workingDirectoryIsDataDirectory
            let absolute = KnownArchives.absolute(archive.path)
            if inDataDirectory && KnownArchives.read().contains(absolute) {
                throw ArchiveFailure(status: .identity,
                                     message: "archive \"\(archive.path)\" has no identity record \"\(ArchiveIdentity.fileName)\", but this cluster has archived to it before",
                                     hint: "Is the archive file system mounted? To start a new archive there on purpose, remove \"\(absolute)\" from \(KnownArchives.fileName) in the data directory.")
            }
            let record: TemporaryFile
            do {
                record = try TemporaryFile(in: archive, finalName: ArchiveIdentity.fileName, mode: 0o644)
            } catch {
                throw publishFailure(error, archive: archive, name: ArchiveIdentity.fileName)
            }
            let text = Array(segment.text.utf8)
            do throws(Errno) {
                // (withUnsafeBytes rethrows untyped errors; the Result carries the Errno through.)
                try text.withUnsafeBytes { buffer in Result { () throws(Errno) in try record.write(buffer) } }.get()
                try record.setMode(0o644)
                try record.sync()
            } catch {
                throw ArchiveFailure(status: .failure, message: "could not write file \"\(archive.path)/\(record.temporaryName)\": \(error)")
            }
            do {
                try record.publish()
            } catch .exists {
                continue  // another archiver created it first: read and compare theirs
            } catch {
                throw publishFailure(error, archive: archive, name: ArchiveIdentity.fileName)
            }
            if inDataDirectory {
                do throws(Errno) {
                    try KnownArchives.note(absolute)
                } catch {
                    throw ArchiveFailure(status: .failure, message: "could not write file \"\(KnownArchives.fileName)\" in the data directory: \(error)")
                }
            }
            console.info("created archive identity record \"\(recordPath)\": \(segment)")
            return
        }
    }

    func readIdentity(archive: DirectoryHandle, recordPath: String) throws(ArchiveFailure) -> ArchiveIdentity? {
        let fd: Int32
        do {
            fd = try archive.openForReading(ArchiveIdentity.fileName)
        } catch .noSuchFileOrDirectory {
            return nil
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not open file \"\(recordPath)\": \(error)")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count: Int
        do throws(Errno) {
            count = try bytes.withUnsafeMutableBytes { buffer in Result { () throws(Errno) in try readFully(fd, into: buffer) } }.get()
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not read file \"\(recordPath)\": \(error)")
        }
        guard let identity = ArchiveIdentity(text: Array(bytes[..<count])) else {
            throw ArchiveFailure(status: .identity, message: "invalid archive identity record \"\(recordPath)\"",
                                 hint: "It is written by walferry-archive; if it was edited by hand, restore it from a copy.")
        }
        return identity
    }

    // MARK: - Comparing with an archived copy

    /// True when `name` exists in the archive with the same WAL as SOURCE (decompressed for `.bz2`);
    /// false when it does not exist. Different contents throw `.conflict`. An identical file is made
    /// durable before returning true.
    func compareExisting(_ name: String, in archive: DirectoryHandle, with source: SourceFile) throws(ArchiveFailure) -> Bool {
        let path = "\(archive.path)/\(name)"
        let info: stat?
        do {
            info = try archive.status(of: name)
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not stat file \"\(path)\": \(error)")
        }
        guard let info else { return false }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ArchiveFailure(status: .conflict, message: "archive file \"\(path)\" exists and is not a regular file")
        }
        let fd: Int32
        do {
            fd = try archive.openForReading(name)
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not open file \"\(path)\": \(error)")
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
                throw ArchiveFailure(status: .conflict,
                                     message: "archive file \"\(path)\" already exists and cannot be decompressed: \(error)")
            }
            if let failure = comparer.readError {
                throw ArchiveFailure(status: .failure, message: "could not read file \"\(request.source)\": \(failure)")
            }
            difference = comparer.firstDifference ?? (comparer.offset == source.size ? nil : min(comparer.offset, source.size))
        } else {
            difference = try comparePlain(fd, path: path, size: UInt64(info.st_size), source: source)
        }
        if let difference {
            throw ArchiveFailure(status: .conflict,
                                 message: "archive file \"\(path)\" already exists with different contents (first difference at byte \(difference))",
                                 hint: name.hasSuffix(".history")
                                    ? "Timeline history files are never overwritten; is another cluster archiving here?"
                                    : "The archived copy was left as it is. Is another cluster archiving to the same place?")
        }
        do throws(Errno) {
            _ = try retryingOnInterrupt { fsync(fd) }
            try archive.sync()
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not fsync file \"\(path)\": \(error)")
        }
        return true
    }

    func comparePlain(_ fd: Int32, path: String, size: UInt64, source: SourceFile) throws(ArchiveFailure) -> UInt64? {
        let mine = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        let theirs = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { mine.deallocate(); theirs.deallocate() }
        var offset: UInt64 = 0
        while true {
            let count: Int, sourceCount: Int
            do throws(Errno) {
                count = try readFully(fd, into: theirs)
            } catch {
                throw ArchiveFailure(status: .failure, message: "could not read file \"\(path)\": \(error)")
            }
            do throws(Errno) {
                sourceCount = try preadFully(source.fd, into: mine, at: offset)
            } catch {
                throw ArchiveFailure(status: .failure, message: "could not read file \"\(request.source)\": \(error)")
            }
            let common = min(count, sourceCount)
            if let index = firstDifference(UnsafeRawBufferPointer(rebasing: mine[..<sourceCount]), UnsafeRawBufferPointer(rebasing: theirs[..<count])) {
                return offset + UInt64(index)
            }
            offset += UInt64(common)
            if count != sourceCount { return offset }
            if count < chunkSize { return size == source.size ? nil : offset }
        }
    }

    // MARK: - Copying and verifying

    /// SOURCE mapped into memory: written from there and compared with the read-back, so that a
    /// segment is copied once instead of twice (read(2) into a buffer, then write(2)).
    func mapSource(_ source: SourceFile) throws(ArchiveFailure) -> MappedFile {
        do {
            return try MappedFile(fd: source.fd, size: source.size)
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not read file \"\(request.source)\": \(error)")
        }
    }

    func syncTemporary(_ temporary: TemporaryFile, mode: mode_t, tempPath: String) throws(ArchiveFailure) {
        do throws(Errno) {
            try temporary.setMode(mode)
            try temporary.sync()
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not fsync file \"\(tempPath)\": \(error)")
        }
    }

    /// Compresses SOURCE into the temporary file; returns the CRC-32C of what was read.
    func copyCompressed(_ source: SourceFile, to temporary: TemporaryFile, tempPath: String) throws(ArchiveFailure) -> UInt32 {
        var crc = CRC32C()
        let result: (bytesIn: UInt64, bytesOut: UInt64)
        do {
            result = try BZip2.compress(from: source.fd, to: temporary.fd, level: 9, jobs: request.jobs) { crc.update($0) }
        } catch {
            switch error {
            case .read(let errno): throw ArchiveFailure(status: .failure, message: "could not read file \"\(request.source)\": \(errno)")
            case .write(let errno): throw ArchiveFailure(status: .failure, message: "could not write file \"\(tempPath)\": \(errno)")
            default: throw ArchiveFailure(status: .failure, message: "could not compress file \"\(request.source)\": \(error)")
            }
        }
        guard result.bytesIn == source.size else { throw source.changedSize(read: result.bytesIn) }
        return crc.value
    }

    /// Opens the synced copy for reading it back, after dropping its cached pages with `--verify storage`.
    func openForVerification(_ temporary: TemporaryFile, tempPath: String) throws(ArchiveFailure) -> Int32 {
        if request.verification == .storage { temporary.dropCache() }
        do {
            return try temporary.openForReading()
        } catch {
            throw ArchiveFailure(status: .failure, message: "could not open file \"\(tempPath)\": \(error)")
        }
    }

    /// Reads the synced copy back (past the page cache with `--verify storage`) and compares it byte
    /// for byte with SOURCE.
    func verifyPlain(_ temporary: TemporaryFile, against expected: UnsafeRawBufferPointer, tempPath: String) throws(ArchiveFailure) {
        let fd = try openForVerification(temporary, tempPath: tempPath)
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        while true {
            let count: Int
            do throws(Errno) {
                count = try readFully(fd, into: buffer)
            } catch {
                throw ArchiveFailure(status: .failure, message: "could not read file \"\(tempPath)\": \(error)")
            }
            let read = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            let wanted = UnsafeRawBufferPointer(rebasing: expected[offset..<min(offset + count, expected.count)])
            if let index = firstDifference(read, wanted) ?? (read.count == wanted.count ? nil : wanted.count) {
                throw ArchiveFailure(status: .verification,
                                     message: "verification of file \"\(tempPath)\" failed: the copy read back differs from the source at byte \(offset + index)")
            }
            offset += count
            if count < chunkSize { break }
        }
        guard offset == expected.count else {
            throw ArchiveFailure(status: .verification,
                                 message: "verification of file \"\(tempPath)\" failed: read back \(offset) bytes, expected \(expected.count)")
        }
    }

    /// Decompresses the synced copy (read past the page cache with `--verify storage`) and checks it
    /// against the CRC-32C and length of SOURCE.
    func verifyCompressed(_ temporary: TemporaryFile, expected: UInt32, length: UInt64, tempPath: String) throws(ArchiveFailure) {
        let fd = try openForVerification(temporary, tempPath: tempPath)
        defer { close(fd) }
        var crc = CRC32C()
        var total: UInt64 = 0
        do {
            _ = try withDiscardedOutput { (null) throws(BZip2Error) in
                try BZip2.decompress(from: fd, to: null, jobs: request.jobs) { crc.update($0); total += UInt64($0.count) }
            }
        } catch {
            throw ArchiveFailure(status: .verification, message: "verification of file \"\(tempPath)\" failed: \(error)")
        }
        guard crc.value == expected, total == length else {
            throw ArchiveFailure(status: .verification,
                                 message: "verification of file \"\(tempPath)\" failed: decompressed \(total) bytes with CRC-32C \(hex8(crc.value)), expected \(length) bytes with \(hex8(expected))")
        }
    }

    func publishFailure(_ error: PublishError, archive: DirectoryHandle, name: String) -> ArchiveFailure {
        let temporaryPath = "\(archive.path)/\(TemporaryFile.temporaryName(for: name))"
        switch error {
        case .exists:
            return ArchiveFailure(status: .conflict, message: "archive file \"\(archive.path)/\(name)\" already exists")
        case .busy:
            return ArchiveFailure(status: .busy, message: "another process is writing \"\(temporaryPath)\"",
                                  hint: "Two archivers write the same file; is the same archive_command running on two servers?")
        case .failed(let step, let errno):
            let hint = errno.rawValue == EROFS || errno == .permissionDenied
                ? "The archive directory must be writable by the server's operating-system user." : nil
            return ArchiveFailure(status: .failure, message: "could not \(step) \"\(temporaryPath)\": \(errno)", hint: hint)
        }
    }
}

/// SOURCE, opened, with what its first page says.
private struct SourceFile {
    let fd: Int32
    let size: UInt64
    let mode: mode_t
    /// For segments and `.partial` files: the checked header's facts.
    let facts: WALSegmentFacts?
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
            throw ArchiveFailure(status: .failure, message: "could not open file \"\(path)\": \(error)", hint: hint)
        }
        var info = stat()
        guard fstat(opened, &info) == 0 else {
            let error = Errno.current
            close(opened)
            throw ArchiveFailure(status: .failure, message: "could not stat file \"\(path)\": \(error)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(opened)
            throw ArchiveFailure(status: .usage, message: "\"\(path)\" is not a regular file")
        }
        fd = opened
        size = UInt64(info.st_size)
        mode = info.st_mode & 0o7777
        guard name.holdsWAL else {
            facts = nil
            return
        }
        var header = [UInt8](repeating: 0, count: WALLongPageHeader.size)
        let count = header.withUnsafeMutableBytes { (try? preadFully(opened, into: $0, at: 0)) ?? 0 }
        do throws(WALSegmentProblem) {
            facts = try checkWALSegment(name: name, firstBytes: header.prefix(count), fileSize: size)
        } catch {
            close(opened)
            throw ArchiveFailure(status: .invalidWAL, message: "\"\(path)\" is not a valid WAL segment: \(error)")
        }
    }

    func changedSize(read: UInt64) -> ArchiveFailure {
        ArchiveFailure(status: .failure, message: "file \"\(path)\" changed size while it was read (\(size) bytes, then \(read))")
    }
}

/// Compares decompressed bytes, arriving in order, with SOURCE read at the same offsets.
private final class StreamComparer {
    let source: SourceFile
    var offset: UInt64 = 0
    var firstDifference: UInt64?
    var readError: Errno?
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)

    init(source: SourceFile) { self.source = source }

    deinit { buffer.deallocate() }

    func consume(_ bytes: UnsafeRawBufferPointer) {
        defer { offset += UInt64(bytes.count) }
        guard firstDifference == nil, readError == nil else { return }
        var done = 0
        while done < bytes.count {
            let want = min(bytes.count - done, chunkSize)
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
private func withDiscardedOutput<T, E: Error>(_ body: (Int32) throws(E) -> T) throws(E) -> T {
    let fd = open("/dev/null", O_WRONLY | O_CLOEXEC)
    defer { if fd >= 0 { close(fd) } }
    return try body(fd)
}
