// walferry-archive's copy: SOURCE written (or compressed) into the temporary file, fsynced, read back
// and compared before it may be published.
//
// Like `cp SOURCE TMP && sync TMP && cmp SOURCE TMP` (or `bzip2 -c SOURCE > TMP && bunzip2 -t`),
// except that the read-back comes from the storage, past the page cache (`--verify storage`), and a
// compressed copy is checked against the CRC-32C of what was read from SOURCE, not just for being a
// sound bzip2 file.

import Glibc

extension Archiver {
    /// SOURCE mapped into memory: written from there and compared with the read-back, so that a
    /// segment is copied once instead of twice (read(2) into a buffer, then write(2)).
    func mapSource(_ source: SourceFile) throws(ArchiveFailure) -> MappedFile {
        // A segment was mapped whole to be checked (SourceFile).
        if let mapping = source.mapping, UInt64(mapping.bytes.count) == source.size { return mapping }
        do {
            return try MappedFile(fd: source.fd, size: source.size)
        } catch {
            throw ArchiveFailure(.failure, "could not read file \"\(request.source)\": \(error)")
        }
    }

    func syncTemporary(_ temporary: TemporaryFile, mode: mode_t, tempPath: String) throws(ArchiveFailure) {
        do throws(Errno) {
            try temporary.setMode(mode)
            try temporary.sync()
        } catch {
            throw ArchiveFailure(.failure, "could not fsync file \"\(tempPath)\": \(error)")
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
            case .read(let errno): throw ArchiveFailure(.failure, "could not read file \"\(request.source)\": \(errno)")
            case .write(let errno): throw ArchiveFailure(.failure, "could not write file \"\(tempPath)\": \(errno)")
            default: throw ArchiveFailure(.failure, "could not compress file \"\(request.source)\": \(error)")
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
            throw ArchiveFailure(.failure, "could not open file \"\(tempPath)\": \(error)")
        }
    }

    /// Reads the synced copy back (past the page cache with `--verify storage`) and compares it byte
    /// for byte with SOURCE.
    func verifyPlain(_ temporary: TemporaryFile, against expected: UnsafeRawBufferPointer, tempPath: String) throws(ArchiveFailure) {
        let fd = try openForVerification(temporary, tempPath: tempPath)
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: archiveChunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        while true {
            let count: Int
            do throws(Errno) {
                count = try readFully(fd, into: buffer)
            } catch {
                throw ArchiveFailure(.failure, "could not read file \"\(tempPath)\": \(error)")
            }
            let read = UnsafeRawBufferPointer(rebasing: buffer[..<count])
            let wanted = UnsafeRawBufferPointer(rebasing: expected[offset..<min(offset + count, expected.count)])
            if let index = firstDifference(read, wanted) ?? (read.count == wanted.count ? nil : wanted.count) {
                throw ArchiveFailure(.verification,
                                     "verification of file \"\(tempPath)\" failed: the copy read back differs from the source at byte \(offset + index)")
            }
            offset += count
            if count < archiveChunkSize { break }
        }
        guard offset == expected.count else {
            throw ArchiveFailure(.verification,
                                 "verification of file \"\(tempPath)\" failed: read back \(offset) bytes, expected \(expected.count)")
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
            throw ArchiveFailure(.verification, "verification of file \"\(tempPath)\" failed: \(error)")
        }
        guard crc.value == expected, total == length else {
            throw ArchiveFailure(.verification,
                                 "verification of file \"\(tempPath)\" failed: decompressed \(total) bytes with CRC-32C \(hex8(crc.value)), expected \(length) bytes with \(hex8(expected))")
        }
    }
}
