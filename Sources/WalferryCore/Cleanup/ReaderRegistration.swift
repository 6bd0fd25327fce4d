// walferry-cleanup's reader commands: --register, --forget-reader, --list-readers.
//
// Like pg_create_physical_replication_slot, pg_drop_replication_slot and the pg_replication_slots
// view, for the readers of an archive (ArchiveReaders.swift), except that:
// - a reader is registered at a WAL file that the archive still holds (or that it will hold: nothing
//   later is there yet), checked under the readers' lock, so that no cleanup can remove that WAL
//   between the check and the record; a WAL file already removed is an error, as it is for a slot
//   created with an LSN whose WAL is gone;
// - registering a name that exists moves it (a standby rebuilt from a new backup), and says so;
// - the list shows each reader's age and where it stands against the expiry.

import Glibc

/// `walferry-cleanup --register NAME ARCHIVE SEGMENT`.
public func registerReader(_ name: String, archiveLocation: String, oldestKeptWALFile: String,
                           console: Console) -> CleanupExitStatus {
    do throws(CleanupFailure) {
        guard ArchiveReaders.isValidName(name) else { throw ArchiveReaders.invalidName(name) }
        let rules: CleanupRules
        do {
            rules = try CleanupRules(oldestKeptWALFile: oldestKeptWALFile, stripExtension: nil, cleanBackupHistory: false)
        } catch {
            throw CleanupFailure(.usage, "invalid file name argument \"\(oldestKeptWALFile)\"",
                                 hint: error.hint ?? "Give the first segment the new reader needs: its base backup's start segment.")
        }
        let segment = String(decoding: rules.cutoff, as: UTF8.self)
        let archive = try openArchive(archiveLocation)
        if let previous = try ArchiveReaders.register(name, at: segment, in: archive), previous.oldestKeptWALFile != segment {
            console.info("reader \"\(name)\" moved from \"\(previous.oldestKeptWALFile)\" to \"\(segment)\"")
        }
        return .success
    } catch {
        error.report(to: console)
        return error.status
    }
}

extension ArchiveReaders {
    /// Registers (or moves) the reader `name` at `segment`, a 24-character segment name, in `archive`;
    /// returns its previous record, if it had one. Shared by walferry-cleanup --register and
    /// walferry-recover --reader.
    public static func register(_ name: String, at segment: String, in archive: ArchiveDirectory) throws(CleanupFailure) -> ArchiveReader? {
        guard isValidName(name) else { throw invalidName(name) }
        let identity = try identityForReaders(archive)
        func checkStillThere() throws(CleanupFailure) {
            if let later = try firstRemoval(before: segment, in: archive) {
                throw CleanupFailure(.failure, "WAL file \"\(segment)\" is no longer in archive \"\(archive.path)\", which holds later WAL from \"\(later)\"",
                                     hint: "A standby that needs it cannot catch up from this archive: take a new base backup and register its start segment.")
            }
        }
        // Once before anything is created (a refused registration leaves nothing behind), and again
        // under the lock, which every cleanup holds while it removes.
        try checkStillThere()
        let readers = try openOrCreate(in: archive)
        let lock = try readers.lock()
        defer { lock.release() }
        let existing = try readers.read(name, identity: identity)
        try checkStillThere()
        try readers.write(ArchiveReader(name: name, systemIdentifier: identity.systemIdentifier,
                                        oldestKeptWALFile: segment, reportedAt: wallClockSeconds()))
        return existing
    }
}

/// `walferry-cleanup --forget-reader NAME ARCHIVE`.
public func forgetReader(_ name: String, archiveLocation: String, console: Console) -> CleanupExitStatus {
    do throws(CleanupFailure) {
        guard ArchiveReaders.isValidName(name) else { throw ArchiveReaders.invalidName(name) }
        let archive = try openArchive(archiveLocation)
        _ = try identityForReaders(archive)
        guard let readers = try ArchiveReaders.open(in: archive) else { throw unknownReader(name, archive: archive) }
        let lock = try readers.lock()
        defer { lock.release() }
        guard try readers.remove(name) else { throw unknownReader(name, archive: archive) }
        return .success
    } catch {
        error.report(to: console)
        return error.status
    }
}

/// `walferry-cleanup --list-readers ARCHIVE`: one line per reader on standard output.
public func listReaders(archiveLocation: String, expiry: Int64, console: Console, output: StandardOutput) -> CleanupExitStatus {
    let now = wallClockSeconds()
    do throws(CleanupFailure) {
        let archive = try openArchive(archiveLocation)
        let identity = try identityForReaders(archive)
        var records: [ArchiveReader] = []
        if let readers = try ArchiveReaders.open(in: archive) {
            let lock = try readers.lock()
            defer { lock.release() }
            records = try readers.records(identity: identity)
        }
        let width = max(6, records.map(\.name.count).max() ?? 0)
        func padded(_ text: String, _ count: Int) -> String { text + String(repeating: " ", count: max(count - text.count, 0)) }
        output.write(padded("READER", width) + "  OLDEST KEPT WAL FILE      REPORTED (UTC)       AGE       STATE\n")
        for reader in records {
            let age = now - reader.reportedAt
            let state = switch ReaderState(age: age, expiry: expiry) {
            case .active: "active"
            case .stale: "stale: expires in \(formatAge(expiry - age))"
            case .expired: "expired: holds nothing back"
            }
            output.write(padded(reader.name, width) + "  " + reader.oldestKeptWALFile + "  "
                         + utcTimestamp(reader.reportedAt) + "  " + padded(formatAge(age), 8) + "  " + state + "\n")
        }
        output.flush()
        if let failure = output.failure {
            throw CleanupFailure(.failure, "could not write to standard output: \(failure)")
        }
        return .success
    } catch {
        error.report(to: console)
        return error.status
    }
}

/// "2026-12-02 14:30:00"
func utcTimestamp(_ seconds: Int64) -> String {
    let t = utcComponents(seconds)
    return "\(zeroPadded(t.year, 4))-\(zeroPadded(t.month, 2))-\(zeroPadded(t.day, 2)) "
        + "\(zeroPadded(t.hour, 2)):\(zeroPadded(t.minute, 2)):\(zeroPadded(t.second, 2))"
}

private func openArchive(_ location: String) throws(CleanupFailure) -> ArchiveDirectory {
    do {
        return try ArchiveDirectory(path: location)
    } catch .noSuchFileOrDirectory {
        throw CleanupFailure(.usage, "archive location \"\(location)\" does not exist")
    } catch where error.rawValue == ENOTDIR {
        throw CleanupFailure(.usage, "archive location \"\(location)\" is not a directory")
    } catch {
        throw CleanupFailure(.failure, "could not open archive location \"\(location)\": \(error)")
    }
}

/// When `segment` is in neither form in the archive but a later segment is (the timeline ignored, as
/// the cleanup does), that later segment's name: the WAL from `segment` on was removed, or never
/// archived. Nil when `segment` is there, or when nothing later is there yet.
private func firstRemoval(before segment: String, in archive: ArchiveDirectory) throws(CleanupFailure) -> String? {
    for candidate in ArchiveDirectory.candidates(for: segment, compressedFirst: false) {
        do {
            if try archive.handle.status(of: candidate) != nil { return nil }
        } catch {
            throw CleanupFailure(.failure, "could not stat file \"\(archive.path(of: candidate))\": \(error)")
        }
    }
    let names: [[UInt8]]
    do {
        names = try directoryNames(archive.handle.path)
    } catch {
        throw CleanupFailure(.failure, "could not read archive location \"\(archive.path)\": \(error)")
    }
    var oldestLater: String?
    for raw in names {
        guard let name = WALFileName(bytes: raw), name.kind == .segment else { continue }
        let text = String(decoding: raw.prefix(24), as: UTF8.self)
        if ArchiveReader.sortsBefore(segment, text), oldestLater.map({ ArchiveReader.sortsBefore(text, $0) }) ?? true {
            oldestLater = text
        }
    }
    return oldestLater
}
