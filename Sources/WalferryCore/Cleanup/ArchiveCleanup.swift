// walferry-cleanup's work: remove the archived WAL that no restart will need.
//
// Equivalent to pg_archivecleanup (PostgreSQL 17, which added -b), with the same decision for every
// entry (see CleanupRules.swift), the same dry-run listing and the same messages, except:
// - a failed removal does not stop the run: every failure is reported, and the exit status is 1 when
//   there was any (PostgreSQL 15+ stops at the first one; 14 and older exited 0);
// - an entry that is already gone when it is removed (a second cleanup running on the same archive) is
//   what was asked for, not a failure;
// - entries are removed relative to the opened directory (unlinkat), so no path is resolved twice and
//   no symbolic link is followed; a directory is never removed;
// - the dry run does not list a directory it would not remove: it warns about it instead;
// - "does not exist" is said only when the location does not exist; "is not a directory" and other
//   stat failures get their own messages (all exit 2, as pg_archivecleanup's one message does);
// - on an archive with registered readers, or with --reader or --backups, the cut-off used can be
//   older than the one given: the oldest that every reader and kept backup agrees on
//   (CleanupHolds.swift). An archive without readers, cleaned without those options, is cleaned
//   exactly as pg_archivecleanup cleans it.

/// The exit statuses of walferry-cleanup, as in pg_archivecleanup.
public enum CleanupExitStatus: Int32, ToolExitStatus, CaseIterable {
    /// Done, including "nothing to remove" and dry runs.
    case success = 0
    /// The archive could not be read, or at least one file could not be removed.
    case failure = 1
    /// A usage error: bad options or arguments, a missing archive location, an invalid cut-off name.
    case usage = 2
}

/// What walferry-cleanup was asked to do.
public struct CleanupRequest: Sendable {
    public var archiveLocation: String
    public var oldestKeptWALFile: String
    public var stripExtension: String?
    public var cleanBackupHistory = false
    public var debug = false
    public var dryRun = false
    /// --reader NAME: the registered reader this run reports for (ArchiveReaders.swift).
    public var reader: String?
    /// --backups DIR: a walferry-backup output directory whose complete backups keep their WAL.
    public var backupsDirectory: String?
    /// --reader-expiry, in seconds.
    public var readerExpiry = defaultReaderExpiry

    public init(archiveLocation: String, oldestKeptWALFile: String) {
        self.archiveLocation = archiveLocation
        self.oldestKeptWALFile = oldestKeptWALFile
    }
}

/// Runs a cleanup, printing as pg_archivecleanup does, and returns the exit status.
public func runCleanup(_ request: CleanupRequest, console: Console, output: StandardOutput) -> CleanupExitStatus {
    let location = request.archiveLocation

    // The location is checked before the cut-off, as pg_archivecleanup does.
    do {
        if try fileType(atPath: FilePath(location)) != .directory {
            console.error("archive location \"\(location)\" is not a directory")
            return .usage
        }
    } catch .noSuchFileOrDirectory {
        console.error("archive location \"\(location)\" does not exist")
        return .usage
    } catch {
        console.error("could not access archive location \"\(location)\": \(error)")
        return .usage
    }

    let asked: CleanupRules
    do {
        asked = try CleanupRules(oldestKeptWALFile: request.oldestKeptWALFile, stripExtension: request.stripExtension,
                                 cleanBackupHistory: request.cleanBackupHistory)
    } catch {
        console.error("invalid file name argument")
        console.hint(error.hint ?? console.tryHelpHint)
        return .usage
    }

    // What the other readers and the backups still need (CleanupHolds.swift); the lock it takes, if
    // any, is held until the last removal.
    let decision: CleanupDecision
    do {
        decision = try decideCutoff(request, rules: asked, console: console)
    } catch {
        error.report(to: console)
        return error.status
    }
    let rules = decision.rules
    defer { decision.lock?.release() }

    // The path printed and reported is the location exactly as given, a slash, and the entry's name.
    let prefix = Array(location.utf8) + [UInt8(ascii: "/")]
    func path(_ name: UnsafeBufferPointer<UInt8>) -> String { String(decoding: prefix + name, as: UTF8.self) }

    if let heldBy = decision.heldBy, request.reader == nil || request.debug {
        // A run without --reader on an archive with readers says so every time: its configuration
        // predates them.
        console.info("keeping WAL file \"\(String(decoding: prefix + rules.cutoff, as: UTF8.self))\" and later, which \(heldBy) still needs")
    } else if request.debug {
        console.info("keeping WAL file \"\(String(decoding: prefix + rules.cutoff, as: UTF8.self))\" and later")
    }

    let directory: Directory
    do {
        directory = try Directory(path: FilePath(location))
    } catch {
        console.error("could not open archive location \"\(location)\": \(error)")
        return .failure
    }

    var status = CleanupExitStatus.success
    do throws(DirectoryReadError<Never>) {
        try directory.forEachEntry { (entry: Directory.Entry) throws(Never) in
            guard rules.removes(entry.name) else { return }
            if request.dryRun {
                if directory.isDirectory(entry) {
                    console.warning("\"\(path(entry.name))\" is a directory, which would not be removed")
                    return
                }
                output.write(prefix)
                output.write(entry.name)
                output.write(CollectionOfOne(UInt8(ascii: "\n")))
                if request.debug { console.info("file \"\(path(entry.name))\" would be removed") }
                return
            }
            if request.debug { console.info("removing file \"\(path(entry.name))\"") }
            do throws(Errno) {
                try directory.removeFile(entry)
            } catch .noSuchFileOrDirectory {
                // Already gone: another cleanup of the same archive got there first.
            } catch {
                console.error("could not remove file \"\(path(entry.name))\": \(error)")
                status = .failure
            }
        }
    } catch {
        switch error {
        case .read(let errno): console.error("could not read archive location \"\(location)\": \(errno)")
        case .body: break  // the body throws Never
        }
        status = .failure
    }
    do {
        try directory.close()
    } catch {
        console.error("could not close archive location \"\(location)\": \(error)")
        status = .failure
    }

    output.flush()
    if let failure = output.failure {
        console.error("could not write to standard output: \(failure)")
        status = .failure
    }
    return status
}
