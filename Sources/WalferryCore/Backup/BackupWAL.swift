// The end of a backup: pg_backup_stop, the wait until the server has archived the backup's last
// segment, and with --wal-archive the WAL copied from the archive into the tarball's pg_wal.
//
// Like pg_backup_stop(wait_for_archive => true) followed by `cp /mnt/archive/<segments> pg_wal/`, except
// that on 15 and later the wait is done here, polling pg_stat_archiver every 50 ms instead of the
// server's whole seconds, and that every file copied from the archive passes the archive layer's
// checks (WALChecks.swift) as walferry-restore's do: a damaged or foreign file fails the backup instead
// of making a backup that cannot be restored.

import Glibc

/// What the stop returned, read.
struct BackupStop {
    let result: BackupStopResult
    let stopLSN: UInt64
    let label: BackupLabel
    /// The segments from the start to the stop, in order: the WAL the backup needs.
    let segments: [String]
}

extension BaseBackupRun {
    /// Stops the backup and waits until its last segment is archived.
    func stopBackup(server: any BackupServer, startLSN: UInt64, startText: String, segmentSize: UInt64) throws(BackupFailure) -> BackupStop {
        // The server's own wait for the archive (pg_backup_stop(true)) checks once, then sleeps a whole
        // second at a time: a second lost on every backup. On 15+, whose pg_stat_archiver is updated the
        // moment a file is archived, the wait is done here instead, polling every 50 ms. Older servers
        // and standbys wait themselves.
        let archiver = try server.archiverStatus()
        let waitHere = server.serverVersionNumber >= 150000 && !archiver.inRecovery
        let result = try server.stopBackup(waitForArchive: !waitHere)
        try abortFlag.check()
        guard let stopLSN = parseLSN(result.stopLSN), let label = BackupLabel(labelfile: result.labelfile),
              let segments = walSegmentsNeeded(timeline: label.timeline, startLSN: label.startLSN,
                                               stopLSN: stopLSN, segmentSize: segmentSize),
              let lastSegment = segments.last else {
            throw BackupFailure(.server, "the server returned a stop location or labelfile that cannot be read")
        }
        if waitHere {
            try waitForArchiving(lastSegment, server: server)
        }
        info("backup stopped at \(result.stopLSN); start WAL file \(label.startWALFile), timeline \(label.timeline)")
        if label.startLSN != startLSN {
            console.warning("the labelfile's start location \(formatLSN(label.startLSN)) differs from pg_backup_start's \(startText)")
        }
        return BackupStop(result: result, stopLSN: stopLSN, label: label, segments: segments)
    }

    /// Waits until the server has archived `segment` (the last one the backup needs), as
    /// pg_backup_stop(true) does: with a warning every minute, interruptible by a signal.
    ///
    /// The archiver takes the ready files in name order (only timeline history files go first) and
    /// retries a failed one until it succeeds. A backup history file, `START.OFFSET.backup`, sorts
    /// after its start segment and before the next one: when the archiver is behind, it is archived
    /// before the segments that follow the backup's start, so it says nothing of the stop segment.
    /// Hence `segment` is archived once the last archived segment or backup history file is named
    /// `segment` or later (the same timeline's names compare as their positions). Anything else leaves
    /// it open; after a few seconds archive_status itself is asked, when the role may.
    func waitForArchiving(_ segment: String, server: any BackupServer) throws(BackupFailure) {
        let started = monotonicSeconds()
        var warned = 0
        while true {
            let status = try server.archiverStatus()
            if status.archiveMode == "off" {
                console.warning("WAL archiving is not enabled; the WAL up to \(segment) must reach the archive by other means for the backup to be usable")
                return
            }
            if let last = status.lastArchivedWAL, let name = WALFileName(last), name.compression == nil, last >= segment {
                switch name.kind {
                case .segment, .backupHistory: return
                case .partial, .timelineHistory: break
                }
            }
            let waited = Int(monotonicSeconds() - started)
            if waited >= 3, server.segmentArchived(segment) == true { return }
            if waited >= 60 * (warned + 1) {
                warned += 1
                console.warning("still waiting for WAL segment \(segment) to be archived (\(waited) seconds elapsed)")
                console.hint("Check that your archive_command is executing properly.\(status.lastFailedWAL.map { " The last file that failed is \($0)." } ?? "")")
            }
            for _ in 0..<5 {
                try abortFlag.check()
                usleep(10_000)
            }
        }
    }

    /// Adds the backup's WAL (and its timeline's history file, when the archive has it) from the
    /// archive to the tarball's pg_wal, each marked as archived already.
    func addWAL(from walArchive: String, stop: BackupStop, control: ServerControlData, walDirectory: [UInt8],
                into base: BackupTarStream, mtime: Int64, serverVersion: Int) throws(BackupFailure) {
        let archive: ArchiveDirectory
        do {
            archive = try ArchiveDirectory(path: walArchive)
        } catch {
            throw BackupFailure(.failure, "could not open archive directory \"\(walArchive)\": \(error)")
        }
        let expected = ArchiveIdentity(systemIdentifier: control.systemIdentifier,
                                       segmentSize: WALSegmentSize(bytes: control.walSegmentSize) ?? .default,
                                       postgresVersion: serverVersion / 10000)
        var names = stop.segments
        if stop.label.timeline > 1 {
            names.insert(WALFileName.timelineHistory(stop.label.timeline).description, at: 0)
        }
        for name in names {
            guard let contents = try readFromArchive(archive, name, expected: expected) else {
                if name.hasSuffix(".history") { continue }  // the server may not have archived it yet; recovery asks for it
                throw BackupFailure(.failure, "WAL file \"\(name)\" is not in the archive \"\(walArchive)\"",
                                    hints: ["Is archive_command copying to this directory, and is archive_mode on?"])
            }
            try base.addFile(path: walDirectory + Array("/\(name)".utf8), contents: contents, mtime: mtime)
            // Marked as archived already, so that the restored server does not archive it again.
            try base.addFile(path: walDirectory + Array("/archive_status/\(name).done".utf8), contents: [], mtime: mtime)
        }
        info("added \(stop.segments.count) WAL segment(s) from \"\(walArchive)\"")
    }

    /// `name` from the archive, plain or `.bz2`, checked as walferry-restore checks what it delivers:
    /// a segment's size and first page against its name and this server's identity, a history file's
    /// syntax; a `.bz2` file's every stream CRC. Nil only when neither form exists: a file that exists
    /// but cannot be read or is damaged fails the backup, never passes as missing.
    func readFromArchive(_ archive: ArchiveDirectory, _ name: String, expected: ArchiveIdentity) throws(BackupFailure) -> [UInt8]? {
        for candidate in ArchiveDirectory.candidates(for: name, compressedFirst: false) {
            let path = archive.path(of: candidate)
            let member: ArchiveDirectory.Member
            do throws(ArchiveDirectory.MemberError) {
                guard let opened = try archive.openMember(candidate) else { continue }
                member = opened
            } catch {
                switch error {
                case .open(let errno), .stat(let errno):
                    throw BackupFailure(.failure, "could not read file \"\(path)\": \(errno)")
                case .notRegular:
                    throw BackupFailure(.failure, "could not read file \"\(path)\": \(Errno.isDirectory)")
                }
            }
            var contents: [UInt8]
            do throws(Errno) {
                contents = try readAll(member.fd, limit: 1 << 31)
            } catch {
                throw BackupFailure(.failure, "could not read file \"\(path)\": \(error)")
            }
            if candidate.hasSuffix(".bz2") {
                do {
                    contents = try BZip2.decompress(contents, jobs: request.jobs)
                } catch {
                    throw BackupFailure(.failure, "could not decompress file \"\(path)\": \(error)",
                                        hints: ["The archived copy is damaged; the backup cannot carry it."])
                }
            }
            try check(contents, name: name, path: path, expected: expected)
            return contents
        }
        return nil
    }

    /// The archive layer's checks on a file read whole, in walferry-backup's words.
    func check(_ contents: [UInt8], name: String, path: String, expected: ArchiveIdentity) throws(BackupFailure) {
        guard let walName = WALFileName(name) else { return }
        if case .timelineHistory = walName.kind {
            if let problem = timelineHistoryProblem(contents, timeline: walName.timeline) {
                throw BackupFailure(.failure, "archive file \"\(path)\" is not a valid timeline history file: \(problem)")
            }
            return
        }
        do throws(ArchivedSegmentProblem) {
            try contents.withUnsafeBytes { raw in
                Result { () throws(ArchivedSegmentProblem) in
                    try checkArchivedSegment(walName, contents: raw, size: UInt64(contents.count), belongsTo: .identity(expected))
                }
            }.get()
        } catch {
            switch error {
            case .invalid(let problem):
                var hint = "Is archive_command copying files whole? A partial copy must never carry the final name."
                if case .records = problem {
                    hint = "The archived copy is damaged, and a backup carrying it could not be restored; replace it from another copy of the archive."
                }
                throw BackupFailure(.failure, "archive file \"\(path)\" is not a valid WAL segment \"\(name)\": \(problem)",
                                    hints: [hint])
            case .foreign(let found):
                throw BackupFailure(.failure, "archive file \"\(path)\" (\(found)) does not belong to the server (\(expected))",
                                    hints: ["Is --wal-archive another cluster's archive?"])
            }
        }
    }
}
