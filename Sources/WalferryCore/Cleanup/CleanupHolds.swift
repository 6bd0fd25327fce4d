// What a cleanup keeps beyond its own cut-off: the WAL that the archive's other registered readers
// and the kept backups still need.
//
// Like pgBackRest's expire, which keeps the WAL from its oldest kept backup's start, except that the
// standbys reading the archive count as well (ArchiveReaders.swift), and that the decision is made by
// every cleanup, the standbys' archive_cleanup_command included:
// - the cut-off actually used is the oldest of: this run's own (`%r`), each registered reader's that
//   has reported within its expiry, and the start of the oldest complete backup in --backups; all
//   compared as pg_archivecleanup compares, without the timeline;
// - an archive without a readers directory, cleaned without --reader and --backups, is cleaned exactly
//   as pg_archivecleanup would: nothing here is read, nothing is locked;
// - otherwise the run holds the readers' lock from reading the records to its last removal, needs the
//   archive's identity record (the records must name its cluster), and removes nothing when a record
//   is unreadable, invalid or another cluster's;
// - --reader NAME first records the run's own `%r` for NAME (a dry run records nothing). A `%r` older
//   than the one NAME reported last is accepted and said: a standby restored from an older backup
//   does need the older WAL;
// - a reader silent for half its expiry is warned about at every run; past it, it holds nothing back,
//   and every run says so.

import Glibc

/// The default --reader-expiry: a week.
public let defaultReaderExpiry: Int64 = 7 * 86_400

/// Parses a --reader-expiry value: a positive number of hours ("36h") or days ("7d").
public func parseReaderExpiry(_ text: String) -> Int64? {
    guard let unit = text.last, let count = Int64(text.dropLast()), count > 0, count < 100_000 else { return nil }
    switch unit {
    case "h": return count * 3_600
    case "d": return count * 86_400
    default: return nil
    }
}

/// "3d 4h", "5h 12m", "7m", "12s": an age, to the two largest units.
public func formatAge(_ seconds: Int64) -> String {
    let seconds = max(seconds, 0)
    let units: [(Int64, String)] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
    guard let first = units.firstIndex(where: { seconds >= $0.0 }) else { return "0s" }
    let (size, name) = units[first]
    var text = "\(seconds / size)\(name)"
    if first + 1 < units.count {
        let (nextSize, nextName) = units[first + 1]
        let rest = (seconds % size) / nextSize
        if rest > 0 { text += " \(rest)\(nextName)" }
    }
    return text
}

/// How a reader stands against its expiry.
public enum ReaderState: Equatable, Sendable {
    case active
    /// Silent for more than half its expiry: still holding WAL back.
    case stale
    /// Silent for longer than its expiry: holding nothing back.
    case expired

    init(age: Int64, expiry: Int64) {
        self = age > expiry ? .expired : age > expiry / 2 ? .stale : .active
    }
}

/// The cut-off a cleanup will use, and what holds it back.
struct CleanupDecision {
    var rules: CleanupRules
    /// Who needs the WAL from the cut-off on, when it is older than the run's own.
    var heldBy: String?
    /// The readers' lock, held until the removals are done.
    var lock: ArchiveReaders.Lock?
}

/// Decides the cut-off of `request` (whose own is `rules`): see the file's header. Prints the warnings
/// about readers; throws, having removed nothing, when the decision cannot be made.
func decideCutoff(_ request: CleanupRequest, rules: CleanupRules, console: Console,
                  now: Int64 = wallClockSeconds()) throws(CleanupFailure) -> CleanupDecision {
    let location = request.archiveLocation
    let archive: ArchiveDirectory
    do {
        archive = try ArchiveDirectory(path: location)
    } catch {
        throw CleanupFailure(.failure, "could not open archive location \"\(location)\": \(error)")
    }
    let readers = try ArchiveReaders.open(in: archive)
    guard readers != nil || request.reader != nil || request.backupsDirectory != nil else {
        return CleanupDecision(rules: rules)  // pg_archivecleanup's behaviour, exactly
    }
    let identity = try identityForReaders(archive)
    if readers == nil, let name = request.reader { throw unknownReader(name, archive: archive) }  // none was ever registered
    let lock = try readers?.lock()
    let records = try readers?.records(identity: identity) ?? []

    var cutoff = String(decoding: rules.cutoff, as: UTF8.self)
    var heldBy: String?
    if let name = request.reader {
        guard let own = records.first(where: { $0.name == name }) else { throw unknownReader(name, archive: archive) }
        if ArchiveReader.sortsBefore(cutoff, own.oldestKeptWALFile) {
            console.warning("reader \"\(name)\" needs WAL from \"\(cutoff)\", older than the \"\(own.oldestKeptWALFile)\" it reported \(formatAge(now - own.reportedAt)) ago: accepted")
            console.hint("A standby restored from an older backup needs older WAL; nothing older than \"\(cutoff)\" is kept for it.")
        }
        if !request.dryRun, let readers {
            try readers.write(ArchiveReader(name: name, systemIdentifier: identity.systemIdentifier,
                                            oldestKeptWALFile: cutoff, reportedAt: now))
        }
    }
    for reader in records where reader.name != request.reader {
        let age = now - reader.reportedAt
        switch ReaderState(age: age, expiry: request.readerExpiry) {
        case .expired:
            console.warning("reader \"\(reader.name)\" last reported \(formatAge(age)) ago, past its expiry of \(formatAge(request.readerExpiry)): the WAL it needs from \"\(reader.oldestKeptWALFile)\" is no longer kept for it")
            console.hint("If it is gone for good: walferry-cleanup --forget-reader \(reader.name) \(location)")
            continue
        case .stale:
            console.warning("reader \"\(reader.name)\" last reported \(formatAge(age)) ago (expiry \(formatAge(request.readerExpiry))): it still holds WAL from \"\(reader.oldestKeptWALFile)\" back")
        case .active:
            break
        }
        if ArchiveReader.sortsBefore(reader.oldestKeptWALFile, cutoff) {
            cutoff = reader.oldestKeptWALFile
            heldBy = "reader \"\(reader.name)\""
        }
    }
    if let backups = request.backupsDirectory, let (backup, start) = try oldestBackupStart(backups, identity: identity),
       ArchiveReader.sortsBefore(start, cutoff) {
        cutoff = start
        heldBy = "backup \"\(backups)/\(backup)\""
    }

    guard heldBy != nil else { return CleanupDecision(rules: rules, lock: lock) }
    // The name is a 24-character segment name, which CleanupRules accepts.
    let held: CleanupRules
    do {
        held = try CleanupRules(oldestKeptWALFile: cutoff, stripExtension: request.stripExtension,
                                cleanBackupHistory: request.cleanBackupHistory)
    } catch {
        throw CleanupFailure(.failure, "invalid WAL file name \"\(cutoff)\" held by \(heldBy ?? "")")
    }
    return CleanupDecision(rules: held, heldBy: heldBy, lock: lock)
}

/// The archive's identity record, which readers and --backups need.
func identityForReaders(_ archive: ArchiveDirectory) throws(CleanupFailure) -> ArchiveIdentity {
    do {
        return try archive.readIdentity()
    } catch .missing {
        throw CleanupFailure(.failure, "archive \"\(archive.path)\" has no identity record \"\(archive.identityPath)\"",
                             hint: "Readers and --backups work on archives that walferry-archive fills: it writes the record with the first segment. Nothing was removed.")
    } catch .invalid {
        throw invalidIdentityRecord(archive, status: CleanupExitStatus.failure)
    } catch {
        throw CleanupFailure(.failure, "could not read archive identity record \"\(archive.identityPath)\": \(error)")
    }
}

func unknownReader(_ name: String, archive: ArchiveDirectory) -> CleanupFailure {
    CleanupFailure(.usage, "reader \"\(name)\" is not registered in archive \"\(archive.path)\"",
                   hints: ["Nothing was removed. Register it first: walferry-cleanup --register \(name) \(archive.path) SEGMENT",
                           "\"walferry-cleanup --list-readers \(archive.path)\" shows the registered readers."])
}

/// The oldest complete backup in `directory` and the first segment it needs, from its verified
/// manifest (BackupCatalog.swift); nil when there is no complete backup. A backup that cannot be read
/// is an error: skipping it would remove the WAL it needs.
func oldestBackupStart(_ directory: String, identity: ArchiveIdentity) throws(CleanupFailure) -> (String, String)? {
    do throws(BackupProblem) {
        guard let oldest = try completeBackups(in: directory).first else { return nil }
        let backup = try CatalogedBackup(at: FilePath(directory).appending(oldest))
        guard let start = backup.startSegment(segmentSize: UInt64(identity.segmentSize.bytes)) else {
            throw BackupProblem(.damaged, "could not find the start WAL location of backup \"\(directory)/\(oldest)\"")
        }
        return (oldest, start)
    } catch {
        throw CleanupFailure(.failure, error.message, hints: error.hints + ["Nothing was removed."])
    }
}
