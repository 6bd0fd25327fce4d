// The prefetch spool: segments fetched, verified and decompressed ahead of the server's requests by
// a detached worker (RestorePrefetch.swift), and handed to the server by rename.
//
// Like pgBackRest's archive-get queue (spool-path, archive-get-queue-max) and barman-wal-restore's
// `--parallel` spool, except that:
// - the spool is a directory the DBA names, outside the data directory (a spool under pg_wal breaks
//   pg_rewind, wal-g#904) and on pg_wal's file system, so that delivery is one rename, never a copy;
//   on another file system the spool is not used (a warning says so) and every request is fetched
//   from the archive as without `--prefetch`;
// - an entry is named `SEGMENT.CRC` (the CRC-32C of its contents, 8 hex digits) and is verified again
//   at delivery: its checksum, its pages and records against its name, and its cluster against the archive's
//   identity record, read afresh. The spool is bound to one archive (`walferry.spool` holds the
//   archive's absolute path; a worker for another archive empties the spool first), so a stale or
//   foreign entry is never delivered: it is discarded with a warning and the file is fetched from
//   the archive;
// - no process ever sees a partial entry, and no two deliver the same one: the worker writes
//   `.SEGMENT.walferry-tmp` under flock(2) and renames it to its final name; the foreground claims an
//   entry by renaming it to a name of its own (`.SEGMENT.claimed-PID`) before verifying it; one worker
//   at a time holds `walferry.spool.lock`;
// - a request for the segment the worker is writing at that moment waits for it (while it grows)
//   instead of decompressing it a second time on the same cores.

import Glibc

/// A prefetch spool directory, opened.
final class PrefetchSpool {
    static let lockName = "walferry.spool.lock"
    static let bindingName = "walferry.spool"
    static let logName = "walferry-prefetch.log"

    let directory: DirectoryHandle
    var path: FilePath { directory.path }

    init(directory: DirectoryHandle) { self.directory = directory }

    /// Opens (creating it, mode 0700, when its parent exists) the spool at `path` for delivery into
    /// `destination`. Nil, with a warning, when it cannot be used.
    static func open(path: String, deliveringInto destination: DirectoryHandle, console: Console) -> PrefetchSpool? {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            console.warning("could not create prefetch spool directory \"\(path)\": \(Errno.current); prefetching is off")
            return nil
        }
        let directory: DirectoryHandle
        do {
            directory = try DirectoryHandle(path: FilePath(path))
        } catch {
            console.warning("could not open prefetch spool directory \"\(path)\": \(error); prefetching is off")
            return nil
        }
        var spoolInfo = stat(), destinationInfo = stat()
        guard fstat(directory.fd, &spoolInfo) == 0, fstat(destination.fd, &destinationInfo) == 0 else { return nil }
        guard spoolInfo.st_dev == destinationInfo.st_dev else {
            console.warning("prefetch spool \"\(path)\" is not on the file system of \"\(destination.path)\"; prefetching is off")
            console.hint("Put the spool on pg_wal's file system, outside the data directory, so that a prefetched segment is delivered by a rename.")
            return nil
        }
        return PrefetchSpool(directory: directory)
    }

    // MARK: - Binding to one archive

    static func bindingText(archive: String) -> String { "walferry prefetch spool 1\narchive: \(archive)\n" }

    /// True when the spool was filled from `archive` (an absolute path).
    func isBound(to archive: String) -> Bool {
        let fd = openat(directory.fd, PrefetchSpool.bindingName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let count = bytes.withUnsafeMutableBytes { (try? readFully(fd, into: $0)) ?? 0 }
        return bytes[..<count].elementsEqual(PrefetchSpool.bindingText(archive: archive).utf8)
    }

    // MARK: - Entries

    /// The name of an entry: `SEGMENT.CRC`.
    static func entryName(_ segment: WALFileName, checksum: UInt32) -> String {
        "\(segment).\(hexChecksum(checksum))"
    }

    /// The segment and checksum an entry name stands for, or nil for any other name.
    static func parseEntry(_ name: some Collection<UInt8>) -> (segment: WALFileName, checksum: UInt32)? {
        guard name.count == 33, Array(name)[24] == UInt8(ascii: "."),
              let segment = WALFileName(bytes: name.prefix(24)), segment.kind == .segment, segment.compression == nil,
              let checksum = parseHex32(name.dropFirst(25)) else { return nil }
        return (segment, checksum)
    }

    /// The entry names for `segment` (normally one).
    func entries(for segment: WALFileName) -> [(name: String, checksum: UInt32)] {
        var found: [(String, UInt32)] = []
        forEachName { name in
            if let entry = PrefetchSpool.parseEntry(name.utf8), entry.segment == segment { found.append((name, entry.checksum)) }
        }
        return found
    }

    /// Calls `body` with every name in the spool (names that are not UTF-8 are skipped).
    func forEachName(_ body: (String) -> Void) {
        guard let listing = try? Directory(path: directory.path) else { return }
        try? listing.forEachEntry { (entry) throws(Never) in
            if let name = String(validating: entry.name, as: UTF8.self) { body(name) }
        }
    }

    enum Take { case delivered, missing }

    /// Delivers `segment` from the spool into `target` when a verified entry is there (waiting for the
    /// worker when it is writing that segment right now). `.missing` when there is none, or when the
    /// one there failed verification (it is then removed, with a warning).
    func take(_ segment: WALFileName, identity: ArchiveIdentity, archive: String, target: DeliveryTarget, console: Console) -> Take {
        guard isBound(to: archive) else { return .missing }
        var candidates = entries(for: segment)
        if candidates.isEmpty && waitForWorker(writing: segment) { candidates = entries(for: segment) }
        for (name, checksum) in candidates {
            // Claim it: after this rename no other process can deliver or remove it.
            let claimed = ".\(segment).claimed-\(getpid())"
            guard renameat(directory.fd, name, directory.fd, claimed) == 0 else { continue }
            Interruption.register(directoryFD: directory.fd, name: claimed)
            if let problem = verifyClaimed(claimed, segment: segment, checksum: checksum, identity: identity, archive: archive) {
                console.warning("discarding prefetched file \"\(path)/\(name)\": \(problem)")
                _ = unlinkat(directory.fd, claimed, 0)
                Interruption.unregister()
                continue
            }
            guard renameat(directory.fd, claimed, target.directory.fd, target.name) == 0 else {
                console.warning("could not rename file \"\(path)/\(claimed)\" to \"\(target.path)\": \(Errno.current)")
                _ = unlinkat(directory.fd, claimed, 0)
                Interruption.unregister()
                continue
            }
            Interruption.unregister()
            return .delivered
        }
        return .missing
    }

    /// Why the claimed entry must not be delivered, or nil when it is sound.
    private func verifyClaimed(_ claimed: String, segment: WALFileName, checksum: UInt32, identity: ArchiveIdentity, archive: String) -> String? {
        let fd: Int32
        do throws(Errno) {
            fd = try directory.openForReading(claimed)
        } catch {
            return "could not open it: \(error)"
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return "not a regular file" }
        let total = UInt64(info.st_size)
        let mapping: MappedFile
        do throws(Errno) {
            mapping = try MappedFile(fd: fd, size: total)
        } catch {
            return "could not read it: \(error)"
        }
        var crc = CRC32C()
        crc.update(mapping.bytes)
        guard crc.value == checksum else {
            return "CRC-32C \(hexChecksum(crc.value)) of its contents does not match its name"
        }
        do throws(RestoreFailure) {
            try verifySegment(name: segment, contents: UnsafeRawBufferPointer(rebasing: mapping.bytes[..<segmentCheckLength(fileSize: total)]),
                              size: total, owner: .identity(identity), path: "\(path)/\(claimed)", archivePath: archive)
        } catch {
            return error.message
        }
        return nil
    }

    /// Waits while the worker writes `segment` (its temporary file is locked and keeps growing);
    /// returns true once an entry may be there. Gives up after 10 s without progress.
    private func waitForWorker(writing segment: WALFileName) -> Bool {
        let tempName = TemporaryFile.temporaryName(for: segment.description)
        var lastSize: off_t = -1
        var lastProgress = monotonicSeconds()
        while true {
            let fd = openat(directory.fd, tempName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { return true }  // renamed into place meanwhile, or never there
            var info = stat()
            let writing = flock(fd, LOCK_SH | LOCK_NB) != 0
            let sized = fstat(fd, &info) == 0
            close(fd)
            guard writing, sized else { return true }
            let now = monotonicSeconds()
            if info.st_size != lastSize {
                lastSize = info.st_size
                lastProgress = now
            } else if now - lastProgress > 10 {
                return false
            }
            usleep(2_000)
        }
    }

    // MARK: - Starting the worker

    /// Starts a detached prefetch worker for the segments after `segment`, unless one is running.
    func startWorker(after segment: WALFileName, request: RestoreRequest, archive: String, preferCompressed: Bool, console: Console) {
        // A worker holds the lock while it runs; it fills the window that follows what it was started
        // for, and the next request after it ends starts the next one.
        let lock = openat(directory.fd, PrefetchSpool.lockName, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else { return }
        let free = flock(lock, LOCK_EX | LOCK_NB) == 0
        close(lock)
        guard free else { return }
        let source = "\(archive)/\(segment)\(preferCompressed ? ".bz2" : "")"
        let arguments = ["walferry-restore", "--prefetch-worker", "--prefetch", "\(request.prefetch)",
                         "--spool", absolutePath(path.description), "--jobs", "\(request.jobs)", source]
        if let error = spawnDetached(arguments) {
            console.warning("could not start the prefetch worker: \(error)")
        }
    }
}

/// `%08X` of a checksum.
func hexChecksum(_ value: UInt32) -> String { hex8(value) }

