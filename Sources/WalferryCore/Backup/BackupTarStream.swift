// One tarball of a backup: tar entries built from the walk's list, compressed by the parallel bzip2
// engine as they are produced, written to a file descriptor.
//
// Like the server's sendFile/_tarWriteHeader (basebackup.c) for what a file's entry holds when the file
// changes under the copy: the size in the header is the size lstat gave during the walk; a file that
// grew is cut at that size, one that shrank is padded with zeros up to it, and one that vanished before
// it was opened is left out without a word (the WAL replayed at recovery rewrites all three). Like
// `tar -cf - | bzip2 -9` for the result, except that the compression runs on several threads
// (BZip2Writer) and each file's CRC-32C for backup_manifest is computed on the way through, so nothing
// is read twice.

import Glibc

/// A tar stream being written, compressed, to `fd`.
final class BackupTarStream {
    /// The output's name in messages: a path, or "standard output".
    let displayName: String
    let fd: Int32
    private let compressor: BZip2Writer
    private let abort: BackupAbortFlag
    private let progress: BackupProgress?
    /// Test-only slow-down, microseconds of sleep before each file (see BackupRequest).
    private let delayPerFile: UInt32
    private let buffer: UnsafeMutableRawBufferPointer
    private var userNames: [UInt32: [UInt8]] = [:]
    private var groupNames: [UInt32: [UInt8]] = [:]
    /// The owner given to entries made from memory (backup_label, WAL): the data directory's.
    private let owner: (uid: UInt32, gid: UInt32)

    init(fd: Int32, displayName: String, level: Int, jobs: Int, abort: BackupAbortFlag, progress: BackupProgress?,
         delayPerFile: UInt32, owner: (uid: UInt32, gid: UInt32)) throws(BackupFailure) {
        do {
            compressor = try BZip2Writer(to: fd, level: level, jobs: jobs)
        } catch {
            throw BackupFailure(.failure, "could not start compressing \"\(displayName)\": \(error)")
        }
        self.fd = fd
        self.displayName = displayName
        self.abort = abort
        self.progress = progress
        self.delayPerFile = delayPerFile
        self.owner = owner
        buffer = .allocate(byteCount: 1 << 20, alignment: 16)
    }

    deinit {
        compressor.close()
        buffer.deallocate()
    }

    /// Compressed bytes written so far.
    var compressedBytes: UInt64 { compressor.bytesOut }

    /// A directory's entry (before its contents, so that extraction keeps its permissions).
    func addDirectory(_ entry: BackupTreeEntry) throws(BackupFailure) {
        try writeHeader(TarHeader(path: entry.tarPath.bytes, type: .directory, mode: entry.mode, uid: entry.uid, gid: entry.gid,
                                  size: 0, mtime: entry.mtime))
    }

    /// Copies a file. Returns the bytes written and their CRC-32C, or nil when the file vanished
    /// before it could be opened.
    func addFile(_ entry: BackupTreeEntry) throws(BackupFailure) -> (size: UInt64, crc32c: UInt32)? {
        guard case .file(let size) = entry.kind else { return nil }
        try abort.check()
        if delayPerFile > 0 { usleep(delayPerFile) }
        let input: Int32
        do {
            input = try openPath(entry.sourcePath, O_RDONLY | O_NOFOLLOW)
        } catch .noSuchFileOrDirectory {
            progress?.skip(size)
            return nil
        } catch {
            throw BackupFailure(.failure, "could not open file \"\(entry.sourcePath)\": \(error)")
        }
        defer { _ = close(input) }
        try writeHeader(TarHeader(path: entry.tarPath.bytes, type: .regular, mode: entry.mode, uid: entry.uid, gid: entry.gid,
                                  size: size, mtime: entry.mtime))
        var crc = CRC32C()
        var copied: UInt64 = 0
        while copied < size {
            try abort.check()
            let want = Int(min(UInt64(buffer.count), size - copied))
            let count: Int
            do {
                count = try readFully(input, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]))
            } catch {
                throw BackupFailure(.failure, "could not read file \"\(entry.sourcePath)\": \(error)")
            }
            if count == 0 { break }  // shrank: padded below
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            crc.update(chunk)
            try compress(chunk)
            copied += UInt64(count)
            progress?.advance(UInt64(count))
        }
        if copied < size {
            // The file shrank since the walk: the header promised `size` bytes, so zeros make up the rest,
            // as the server does. Replay of the WAL rewrites the pages concerned.
            let missing = size - copied
            var zeros = UInt64(0)
            let zeroChunk = [UInt8](repeating: 0, count: 1 << 16)
            while zeros < missing {
                let take = Int(min(UInt64(zeroChunk.count), missing - zeros))
                zeroChunk.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[..<take])) }
                zeros += UInt64(take)
            }
            try compressZeros(Int(missing))
            progress?.advance(missing)
        }
        try compressZeros(tarPadding(size))
        return (size, crc.value)
    }

    /// A file whose contents are in memory (backup_label, tablespace_map, WAL from the archive, the
    /// manifest of a single-tarball backup). Returns the contents' CRC-32C.
    @discardableResult
    func addFile(path: [UInt8], contents: [UInt8], mode: UInt32 = 0o600, mtime: Int64) throws(BackupFailure) -> UInt32 {
        try abort.check()
        try writeHeader(TarHeader(path: path, type: .regular, mode: mode, uid: owner.uid, gid: owner.gid,
                                  size: UInt64(contents.count), mtime: mtime))
        try compressArray(contents)
        try compressZeros(tarPadding(UInt64(contents.count)))
        return CRC32C.checksum(contents)
    }

    /// Writes the end-of-archive blocks and the last compressed streams.
    func finish() throws(BackupFailure) {
        try compressZeros(tarEndOfArchiveSize)
        do {
            try compressor.finish()
        } catch {
            throw mapped(error)
        }
        compressor.close()
    }

    // MARK: - Writing through the compressor

    private func writeHeader(_ header: TarHeader) throws(BackupFailure) {
        var named = header
        named.userName = userName(header.uid)
        named.groupName = groupName(header.gid)
        try compressArray(named.encoded())
    }

    private func compressArray(_ bytes: [UInt8]) throws(BackupFailure) {
        var failure: BackupFailure?
        bytes.withUnsafeBytes { raw in
            do throws(BackupFailure) {
                try compress(raw)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    private func compress(_ bytes: UnsafeRawBufferPointer) throws(BackupFailure) {
        do {
            try compressor.write(bytes)
        } catch {
            throw mapped(error)
        }
    }

    private func compressZeros(_ count: Int) throws(BackupFailure) {
        do {
            try compressor.writeZeros(count)
        } catch {
            throw mapped(error)
        }
    }

    private func mapped(_ error: BZip2Error) -> BackupFailure {
        switch error {
        case .write(let errno): BackupFailure(.failure, "could not write to \(displayName): \(errno)")
        default: BackupFailure(.failure, "could not compress \(displayName): \(error)")
        }
    }

    // MARK: - Owner names, as tar shows them

    /// The user's name for uid (empty when it has none), so that extraction as root maps owners by
    /// name as tar does. The corresponding C function is `getpwuid_r`.
    private func userName(_ uid: UInt32) -> [UInt8] {
        if let name = userNames[uid] { return name }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var storage = [CChar](repeating: 0, count: 4096)
        let name: [UInt8] = storage.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress, getpwuid_r(uid_t(uid), &entry, base, buffer.count, &result) == 0,
                  result != nil, let cName = entry.pw_name else { return [] }
            return Array(String(cString: cName).utf8.prefix(31))
        }
        userNames[uid] = name
        return name
    }

    /// The group's name for gid. The corresponding C function is `getgrgid_r`.
    private func groupName(_ gid: UInt32) -> [UInt8] {
        if let name = groupNames[gid] { return name }
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var storage = [CChar](repeating: 0, count: 4096)
        let name: [UInt8] = storage.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress, getgrgid_r(gid_t(gid), &entry, base, buffer.count, &result) == 0,
                  result != nil, let cName = entry.gr_name else { return [] }
            return Array(String(cString: cName).utf8.prefix(31))
        }
        groupNames[gid] = name
        return name
    }
}
