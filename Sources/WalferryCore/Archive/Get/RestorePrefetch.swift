// The prefetch worker: a detached process that fetches, verifies and decompresses the segments that
// follow the one just restored into the spool (RestoreSpool.swift), so that the server's next
// requests are answered with a rename while it replays.
//
// Like pgBackRest's asynchronous archive-get process and wal-g's prefetch, except that it is bounded
// and leaves the server alone:
// - it is our own executable started again (posix_spawn of /proc/self/exe, with a hidden
//   `--prefetch-worker`), which calls setsid() first: it leaves the server's process group (a fast
//   shutdown's SIGTERM to the startup process's group does not reach it) and needs no reaping (the
//   tool exits at once; init adopts the worker). Standard input, output and error are /dev/null, and
//   every other inherited descriptor is closed, so it holds none of the server's pipes or files open;
//   its messages go to `walferry-prefetch.log` in the spool, rewritten by each worker;
// - one worker at a time (flock on `walferry.spool.lock`, which holds its process ID), at most N
//   segments per worker, no new fetch after 5 minutes, and SIGALRM ends it after 10 (the temporary
//   file it leaves then is removed by the next worker, as a SIGKILL's would be);
// - the spool never holds more than N entries: anything outside the window being fetched (older
//   segments, other timelines) is removed first;
// - the tool never waits for the worker, except for the very segment the worker is writing when it
//   is asked for (RestoreSpool.take).

import Glibc

/// The most segments `--prefetch` accepts.
public let maximumPrefetch = 64

/// Starts our own executable with `arguments` (argv[0] first) as a detached process: standard
/// input, output and error on /dev/null. Returns the error when it could not be started.
func spawnDetached(_ arguments: [String]) -> Errno? {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    let result = posix_spawn(&pid, "/proc/self/exe", &actions, nil, argv, environ)
    return result == 0 ? nil : Errno(result)
}

/// The process ID in a claimed entry's name, `.SEGMENT.claimed-PID`.
func claimingProcess(_ name: String) -> pid_t? {
    let parts = name.split(separator: "-")
    guard parts.count == 2, parts[0].hasSuffix(".claimed"), let pid = Int32(parts[1]), pid > 0 else { return nil }
    return pid
}

/// The worker's main: fetches the `count` segments after SOURCE's into the spool. Returns the exit
/// status (nobody reads it; 0 also when another worker is running).
public func runPrefetchWorker(source: String, spool spoolPath: String, count: Int, jobs: Int) -> Int32 {
    // Leave the server's session and process group, and every descriptor it handed down.
    _ = setsid()
    closefrom(3)
    _ = chdir("/")
    Interruption.install(.exit(status: 1), program: "walferry-restore")
    alarm(600)
    let softDeadline = monotonicSeconds() + 300
    let console = Console(program: "walferry-restore")

    guard let directory = try? DirectoryHandle(path: FilePath(spoolPath)) else { return 1 }
    let spool = PrefetchSpool(directory: directory)
    let lock = openat(directory.fd, PrefetchSpool.lockName, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else { return 0 }  // another worker runs
    // The lock stays held until the process ends; the descriptor is never closed.
    var pidLine = "\(getpid())\n"
    _ = ftruncate(lock, 0)
    pidLine.withUTF8 { _ = pwrite(lock, $0.baseAddress, $0.count, 0) }
    let log = openat(directory.fd, PrefetchSpool.logName, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
    if log >= 0 {
        dup2(log, 2)
        close(log)
    }

    let (archivePath, sourceName) = splitPath(source)
    guard let after = WALFileName(sourceName), after.kind == .segment, after.compression == nil || after.compression == .bzip2 else {
        console.error("\"\(source)\" is not the archive path of a WAL segment")
        return 1
    }
    let archive: ArchiveDirectory
    let identity: ArchiveIdentity
    do {
        archive = try ArchiveDirectory(path: archivePath)
        identity = try archive.readIdentity()
    } catch {
        console.error("could not read the identity record of archive \"\(archivePath)\": \(error)")
        return 1
    }
    guard let first = after.uncompressed.segmentNumber(segmentSize: identity.segmentSize) else { return 1 }
    let window = (1...max(1, min(count, maximumPrefetch))).map {
        WALFileName(timeline: after.timeline, segmentNumber: first + UInt64($0), segmentSize: identity.segmentSize)
    }

    // Bind the spool to this archive, then keep only what is in the window.
    let bound = spool.isBound(to: archivePath)
    let wanted = Set(window)
    spool.forEachName { name in
        if let entry = PrefetchSpool.parseEntry(name.utf8) {
            if !bound || !wanted.contains(entry.segment) { _ = unlinkat(directory.fd, name, 0) }
        } else if name.hasSuffix(".walferry-tmp") {
            try? TemporaryFile.removeIfStale(directory: directory, name: name)
        } else if name.hasPrefix("."), let pid = claimingProcess(name), kill(pid, 0) != 0, errno == ESRCH {
            _ = unlinkat(directory.fd, name, 0)
        }
    }
    if !bound {
        do {
            let record = try ReplacingFile(in: directory, temporaryFor: PrefetchSpool.bindingName, mode: 0o600)
            var text = PrefetchSpool.bindingText(archive: archivePath)
            try text.withUTF8 { buffer in Result { () throws(Errno) in try record.write(UnsafeRawBufferPointer(buffer)) } }.get()
            try record.replace(PrefetchSpool.bindingName, durable: false)
        } catch {
            console.error("could not write file \"\(spoolPath)/\(PrefetchSpool.bindingName)\": \(error)")
            return 1
        }
    }

    let preferCompressed = after.compression == .bzip2
    for segment in window {
        guard monotonicSeconds() < softDeadline else { break }
        guard spool.entries(for: segment).isEmpty else { continue }
        let plain = segment.description
        var fetched = false
        for candidate in ArchiveDirectory.candidates(for: plain, compressedFirst: preferCompressed) {
            do throws(RestoreFailure) {
                guard let member = try openArchiveMember(candidate, in: archive) else { continue }
                let temporary: ReplacingFile
                do {
                    temporary = try ReplacingFile(in: directory, temporaryFor: plain, mode: 0o666)
                } catch {
                    throw RestoreFailure(.failure, "could not create a temporary file for \"\(plain)\" in \"\(spoolPath)\": \(error)")
                }
                let content = try copyVerified(from: member, path: archive.path(of: candidate), compressed: candidate.hasSuffix(".bz2"),
                                               to: temporary, tempPath: "\(spoolPath)/\(temporary.temporaryName)", wanted: segment,
                                               owner: .identity(identity), archivePath: archivePath, jobs: jobs)
                do {
                    try temporary.replace(PrefetchSpool.entryName(segment, checksum: content.checksum), durable: false)
                } catch {
                    throw RestoreFailure(.failure, "could not rename a temporary file in \"\(spoolPath)\": \(error)")
                }
            } catch {
                // The foreground meets the same problem when the server asks, and reports it there.
                console.error(error.message)
                return 1
            }
            console.info("prefetched \"\(archivePath)/\(candidate)\"")
            fetched = true
            break
        }
        if !fetched { break }  // the end of the archive, for now
    }
    return 0
}
