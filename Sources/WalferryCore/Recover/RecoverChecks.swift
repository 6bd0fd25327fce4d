// What walferry-recover checks before it writes or publishes anything: a live server in the target,
// the backup's place in the target timeline's history, and the WAL the recovery needs.
//
// - The live server: like pg_ctl status (postmaster.pid's first line is the postmaster's PID, and a
//   process of that PID exists: kill(pid, 0) succeeds or fails with EPERM), except that a PID file
//   naming a dead process is stale, not live, as the server itself decides at start.
// - The timeline: like the server's check at the start of recovery (xlogrecovery.c: the checkpoint
//   must lie on the requested timeline's history, "requested timeline %u is not a child of this
//   server's history") and pgBackRest's check before it copies anything: the history file of the
//   target timeline (from the archive) must list the backup's timeline, and the backup must have
//   ended before that timeline forked off.
// - The WAL: like pg_verifybackup's WAL check (pg_waldump over the backup's range), but only for the
//   presence of each segment from the backup's start to its stop, in the restored pg_wal or in the
//   archive, plain or .bz2; walferry-restore verifies each one's content when the server asks for it.

import Glibc

/// The PID of a running server whose postmaster.pid is in `directory`, or nil.
func livePostmasterPID(in directory: FilePath) -> Int32? {
    guard let bytes = try? readWholeFile(directory.appending("postmaster.pid"), limit: 4096),
          let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first,
          let pid = Int32(String(line.filter { $0 != " " && $0 != "\r" })), pid > 0 else { return nil }
    if kill(pid, 0) == 0 || errno == EPERM { return pid }
    return nil
}

/// A timeline of a target timeline's history and the WAL range it was current for.
struct TimelineRange: Equatable {
    let timeline: UInt32
    let begin: UInt64
    /// Where the next timeline forked off; nil for the target timeline itself.
    let end: UInt64?
}

/// The timelines a target timeline descends from, each with its LSN range (the server's
/// readTimeLineHistory), from the history file as WALChecks parses it.
func timelineHistory(_ bytes: [UInt8], timeline: UInt32) -> [TimelineRange]? {
    guard case .success(let entries) = parseTimelineHistory(bytes, timeline: timeline) else { return nil }
    var ranges: [TimelineRange] = []
    var begin: UInt64 = 0
    for entry in entries {
        ranges.append(TimelineRange(timeline: entry.parent, begin: begin, end: entry.switchpoint))
        begin = entry.switchpoint
    }
    ranges.append(TimelineRange(timeline: timeline, begin: begin, end: nil))
    return ranges
}

/// A small file of the archive (a history file), plain or .bz2; nil when neither exists.
func readArchiveFile(_ archive: ArchiveDirectory, _ name: String) throws(RecoverFailure) -> [UInt8]? {
    for candidate in ArchiveDirectory.candidates(for: name, compressedFirst: false) {
        let member: ArchiveDirectory.Member
        do throws(ArchiveDirectory.MemberError) {
            guard let opened = try archive.openMember(candidate) else { continue }
            member = opened
        } catch {
            throw RecoverFailure(.failure, "could not read file \"\(archive.path(of: candidate))\": \(error)")
        }
        var bytes: [UInt8]
        do {
            bytes = try readAll(member.fd, limit: Int(maximumTimelineHistorySize))
        } catch {
            throw RecoverFailure(.failure, "could not read file \"\(archive.path(of: candidate))\": \(error)")
        }
        if candidate.hasSuffix(".bz2") {
            do {
                bytes = try BZip2.decompress(bytes, jobs: 1)
            } catch {
                throw RecoverFailure(.unrecoverable, "could not decompress file \"\(archive.path(of: candidate))\": \(error)")
            }
        }
        return bytes
    }
    return nil
}

/// Whether `name` is in the archive, plain or .bz2.
func archiveHolds(_ archive: ArchiveDirectory, _ name: String) -> Bool {
    for candidate in ArchiveDirectory.candidates(for: name, compressedFirst: false) {
        if let member = try? archive.openMember(candidate) {
            _ = member  // closed when released
            return true
        }
    }
    return false
}

/// The newest timeline whose history file the archive holds, starting from `timeline` (the server's
/// findNewestTimeLine: it probes upwards).
func newestTimeline(in archive: ArchiveDirectory, from timeline: UInt32) -> UInt32 {
    var newest = timeline
    var probe = timeline + 1
    while probe < UInt32.max, archiveHolds(archive, WALFileName.timelineHistory(probe).description) {
        newest = probe
        probe += 1
    }
    return newest
}

/// Refuses a backup that is not on the history of `target`.
func checkTimeline(backup: CatalogedBackup, manifest: ParsedBackupManifest, target: UInt32,
                   archive: ArchiveDirectory?) throws(RecoverFailure) {
    let own = manifest.timeline
    if target == own { return }
    guard target > own else {
        throw RecoverFailure(.unrecoverable, "backup \"\(backup.id)\" is on timeline \(own), after the target timeline \(target)",
                             hints: ["Choose an older backup, or give --target-timeline \(own) or later."])
    }
    let name = WALFileName.timelineHistory(target).description
    guard let archive, let bytes = try readArchiveFile(archive, name) else {
        throw RecoverFailure(.unrecoverable, "the history of timeline \(target) is unknown: \"\(name)\" is not in the WAL archive",
                             hints: ["Give the archive that holds it with --wal-archive."])
    }
    guard let history = timelineHistory(bytes, timeline: target) else {
        throw RecoverFailure(.unrecoverable, "archive file \"\(archive.path(of: name))\" is not a valid timeline history file")
    }
    guard let entry = history.first(where: { $0.timeline == own }) else {
        throw RecoverFailure(.unrecoverable, "backup \"\(backup.id)\" on timeline \(own) is not in the history of timeline \(target)",
                             hints: ["Choose a backup taken on timeline \(target) or one of its ancestors, or give --target-timeline \(own)."])
    }
    if let end = entry.end, manifest.endLSN > end {
        throw RecoverFailure(.unrecoverable, "backup \"\(backup.id)\" is not in the history of timeline \(target): timeline \(target) forked off timeline \(own) at \(formatLSN(end)), before the backup ended at \(formatLSN(manifest.endLSN))",
                             hints: ["Choose a backup that ended before the fork, or give --target-timeline \(own)."])
    }
    if manifest.startLSN < entry.begin {
        throw RecoverFailure(.unrecoverable, "backup \"\(backup.id)\" is not in the history of timeline \(target): it starts at \(formatLSN(manifest.startLSN)), before timeline \(own) began at \(formatLSN(entry.begin))")
    }
}
