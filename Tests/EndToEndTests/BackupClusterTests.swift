// walferry-backup against real servers, as an operator would use it: a backup taken under pgbench
// load, extracted with tar, checked by pg_verifybackup and restored to the primary's exact data (once
// as a targeted recovery, once as a standby that catches up through the archive and is promoted); a
// cluster with a tablespace; a session killed mid-backup, a second run refused, a signal, and
// retention of backups and WAL; PostgreSQL 14 (pg_start_backup) and 16 with a version-1 manifest, and the
// version-2 manifest of PostgreSQL 17 and 18.
//
// Like PostgreSQL's src/bin/pg_basebackup/t/010_pg_basebackup.pl and pg_verifybackup's tests, on
// throwaway clusters (TestSupport/PostgresCluster.swift). The archive is filled by walferry-archive
// and read back by walferry-restore in targeted-recovery mode, as in production.

import Foundation
import Testing
import TestSupport

/// What identifies the data at a point: row counts, balances and a digest of pgbench's history.
func pgbenchState(_ sql: (String) throws -> String) throws -> String {
    try sql("""
        SELECT (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts) || '/' ||
               (SELECT sum(bbalance) FROM pgbench_branches) || '/' ||
               (SELECT count(*) || ':' || coalesce(md5(string_agg(tid || ',' || bid || ',' || aid || ',' || delta, ';' ORDER BY mtime, tid, aid, delta)), '')
                FROM pgbench_history)
        """)
}

func conninfo(_ cluster: PostgresCluster) -> String {
    "host=\(cluster.socketDirectory) port=\(cluster.port) user=postgres dbname=postgres"
}

/// A cluster archiving into `archive` through walferry-archive.
func archivingCluster(_ installation: PostgresInstallation, archive: String, name: String) throws -> PostgresCluster {
    try PostgresCluster(installation: installation, name: name, settings: [
        "archive_mode": "on",
        "archive_command": "'\(postgresReachableToolDirectory)/walferry-archive %p \(archive)/%f'",
    ])
}

/// Starts `restored` as a point-in-time recovery (recovery.signal) whose restore_command is
/// walferry-restore on `archive`, and waits until it has replayed the archive and promoted. False,
/// with the server log recorded as an issue, when it does not within `timeout` seconds.
func recoversThroughWalferryRestore(_ restored: PostgresCluster, archive: String, timeout: Double) throws -> Bool {
    try restored.appendCopySettings(["restore_command": "'\(postgresReachableToolDirectory)/walferry-restore --pitr \(archive)/%f %p'"])
    try writeFile(restored.dataDirectory + "/recovery.signal", [])
    try handToPostgresUser(restored.dataDirectory + "/recovery.signal", recursive: false)
    try restored.start()
    do {
        try waitUntil("the restored server has replayed the archive and promoted", timeout: timeout) {
            (try? restored.sql("SELECT pg_is_in_recovery()")) == "f"
        }
    } catch {
        Issue.record("\(error)\n\(restored.serverLog())")
        return false
    }
    return true
}

/// A started system-PostgreSQL primary archiving through walferry-archive, with table t (1,000 rows)
/// in tablespace ts1 at `location`; `backups` is an empty folder. The folder holds them all: keep it.
func primaryWithATablespace(prefix: String) throws
    -> (PostgresInstallation, folder: TemporaryDirectory, archive: String, location: String, backups: String,
        primary: PostgresCluster, oid: String) {
    let pg = try PostgresInstallation.system()
    let folder = try TemporaryDirectory(prefix: prefix)
    let archive = try folder.makeDirectory("archive")
    let location = try folder.makeDirectory("ts1", mode: 0o700)
    try handToPostgresUser(archive)
    try handToPostgresUser(location)
    let backups = try folder.makeDirectory("backups")
    let primary = try archivingCluster(pg, archive: archive, name: "primary-ts")
    try primary.start()
    try primary.sql("CREATE TABLESPACE ts1 LOCATION '\(location)'")
    try primary.sql("CREATE TABLE t (x int) TABLESPACE ts1")
    try primary.sql("INSERT INTO t SELECT generate_series(1, 1000)")
    let oid = try primary.sql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
    return (pg, folder, archive, location, backups, primary, oid)
}

/// Runs pg_verifybackup as the postgres user; returns its outcome.
func verifyBackup(_ installation: PostgresInstallation, _ arguments: [String]) throws -> ProcessOutcome {
    try runAsPostgresUser(installation.tool("pg_verifybackup"), arguments)
}

/// The sorted member names of a tarball as `tool -tjf` lists them.
func tarMembers(_ tool: String, _ tarball: String) throws -> [String] {
    let outcome = try runProcess(tool, ["-tjf", tarball])
    guard outcome.status == 0 else { throw TestFailure("\(tool) -tjf \(tarball): \(outcome)") }
    return outcome.stdoutLines.sorted()
}

/// Starts `executable` in the background with the test process's environment and `extra` added.
func startInBackground(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> RunningProcess {
    try RunningProcess(executable, arguments, environment: ProcessInfo.processInfo.environment.merging(extra) { _, new in new })
}

@Suite(.serialized) struct BackupClusterTests {
    @Test func backupUnderLoadVerifiesAndRestoresToThePrimarysData() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-backup-load")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let backups = try folder.makeDirectory("backups")
        let primary = try archivingCluster(pg, archive: archive, name: "primary")
        try primary.start()
        defer { try? primary.stop() }
        let bench = ["-h", primary.socketDirectory, "-p", "\(primary.port)", "-U", "postgres"]
        let initialise = try runProcess(pg.tool("pgbench"), ["-i", "-s", "2", "-q"] + bench + ["postgres"])
        #expect(initialise.status == 0, "\(initialise)")

        // A bounded load in the background for the whole backup.
        let load = try startInBackground(pg.tool("pgbench"), ["-n", "-c", "2", "-T", "6"] + bench + ["postgres"])
        usleep(300_000)
        let outcome = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups,
                                                      "-c", "fast", "-j", "2", "--wal-archive", archive])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stdout == "" && outcome.stderr == "", "a successful run is silent: \(outcome)")
        let loaded = try load.wait(timeout: 60)
        #expect(loaded.status == 0 && !loaded.signaled, "pgbench: \(loaded.stderr)")

        // The chosen point: after the load, with every segment up to it archived.
        let expected = try pgbenchState { try primary.sql($0) }
        let lastSegment = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("\(lastSegment) is archived") { entryExists(archive + "/" + lastSegment) }

        let names = try listDirectory(backups)
        #expect(names.count == 2 && names[0] == ".walferry-backup.lock", "\(names)")
        let backup = backups + "/" + names[1]
        #expect(try listDirectory(backup) == ["backup_manifest", "base.tar.bz2"])
        let members = try tarMembers("/bin/tar", backup + "/base.tar.bz2")
        #expect(members == (try tarMembers("/usr/bin/bsdtar", backup + "/base.tar.bz2")))
        #expect(members.contains("backup_label") && members.contains("global/pg_control") && members.contains("pg_wal/archive_status/"))
        #expect(!members.contains("postmaster.pid") && !members.contains("tablespace_map"))

        let restored = try PostgresCluster(installation: pg, restoring: backup + "/base.tar.bz2")
        try FileManager.default.copyItem(atPath: backup + "/backup_manifest", toPath: restored.dataDirectory + "/backup_manifest")
        try handToPostgresUser(restored.dataDirectory + "/backup_manifest", recursive: false)
        // The WAL in the tarball and the archive both satisfy pg_verifybackup's WAL check.
        for arguments in [[restored.dataDirectory], ["-w", archive, restored.dataDirectory], ["-n", restored.dataDirectory]] {
            let verify = try verifyBackup(pg, arguments)
            #expect(verify.status == 0 && verify.stdout == "backup successfully verified\n", "\(arguments): \(verify)")
        }

        guard try recoversThroughWalferryRestore(restored, archive: archive, timeout: 120) else { return }
        #expect(try pgbenchState { try restored.sql($0) } == expected)

        // The same backup as a standby (standby.signal, walferry-restore --standby), which catches up
        // with more load through the archive alone and is then promoted.
        let standby = try PostgresCluster(installation: pg, restoring: backup + "/base.tar.bz2")
        try standby.appendCopySettings(["restore_command": "'\(postgresReachableToolDirectory)/walferry-restore --standby \(archive)/%f %p'",
                               "hot_standby": "on"])
        try writeFile(standby.dataDirectory + "/standby.signal", [])
        try handToPostgresUser(standby.dataDirectory + "/standby.signal", recursive: false)
        try standby.start()
        let more = try runProcess(pg.tool("pgbench"), ["-n", "-c", "2", "-t", "200"] + bench + ["postgres"])
        #expect(more.status == 0, "\(more)")
        let later = try pgbenchState { try primary.sql($0) }
        #expect(later != expected)
        try primary.sql("SELECT pg_switch_wal()")
        do {
            try waitUntil("the standby has caught up through the archive", timeout: 120) {
                (try? pgbenchState { try standby.sql($0) }) == later
            }
        } catch {
            Issue.record("\(error)\n\(standby.serverLog())")
            return
        }
        #expect(try standby.sql("SELECT pg_is_in_recovery()") == "t")
        try standby.promote()
        #expect(try standby.sql("SELECT pg_is_in_recovery()") == "f")
        #expect(try pgbenchState { try standby.sql($0) } == later)
        #expect(try standby.sql("CREATE TABLE promoted (x int); INSERT INTO promoted VALUES (1); SELECT count(*) FROM promoted") == "1")
    }

    @Test func tablespacesGetTheirOwnTarballsAndRestoreAsSymlinks() throws {
        let (pg, folder, archive, location, backups, primary, oid) = try primaryWithATablespace(prefix: "walferry-backup-ts")
        defer { try? primary.stop() }

        // A single tarball cannot hold a tablespace.
        for output in ["-", folder.join("single.tar.bz2")] {
            let refused = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", output, "-c", "fast"])
            #expect(refused.status == 2)
            #expect(refused.stdout == "")
            #expect(refused.stderrLines == [
                "walferry-backup: error: the cluster has 1 tablespace(s), which a single tarball cannot hold",
                "walferry-backup: hint: Give a directory to -o: each tablespace gets its own <oid>.tar.bz2 there, as pg_basebackup -Ft writes.",
            ])
        }
        #expect(!entryExists(folder.join("single.tar.bz2")))

        let outcome = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups,
                                                      "-c", "fast", "--wal-archive", archive])
        #expect(outcome.status == 0, "\(outcome)")
        let backup = backups + "/" + (try listDirectory(backups).last ?? "")
        #expect(try listDirectory(backup) == ["\(oid).tar.bz2", "backup_manifest", "base.tar.bz2"])
        let tablespaceMembers = try tarMembers("/bin/tar", backup + "/\(oid).tar.bz2")
        #expect(tablespaceMembers.first?.hasPrefix("PG_15_") == true && tablespaceMembers.allSatisfy { $0.hasPrefix("PG_15_") })
        let baseMembers = try tarMembers("/bin/tar", backup + "/base.tar.bz2")
        #expect(baseMembers.contains("tablespace_map") && baseMembers.contains("pg_tblspc/"))
        #expect(!baseMembers.contains { $0.hasPrefix("pg_tblspc/\(oid)") })

        // Restored elsewhere: the tablespace extracted to a new location, tablespace_map edited to it
        // (what an operator does when relocating), pg_tblspc/<oid> left for the server to make.
        let restored = try PostgresCluster(installation: pg, restoring: backup + "/base.tar.bz2")
        let newLocation = try restored.folder.makeDirectory("ts1-restored", mode: 0o700)
        #expect(try runProcess("/bin/tar", ["-xjf", backup + "/\(oid).tar.bz2", "-C", newLocation]).status == 0)
        try handToPostgresUser(restored.folder.path)
        #expect(try String(contentsOfFile: restored.dataDirectory + "/tablespace_map", encoding: .utf8) == "\(oid) \(location)\n")

        // pg_verifybackup reaches the tablespace through a link, as after a restore.
        let link = restored.dataDirectory + "/pg_tblspc/\(oid)"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: newLocation)
        try FileManager.default.copyItem(atPath: backup + "/backup_manifest", toPath: restored.dataDirectory + "/backup_manifest")
        try handToPostgresUser(restored.folder.path)
        let verify = try verifyBackup(pg, [restored.dataDirectory])
        #expect(verify.status == 0 && verify.stdout == "backup successfully verified\n", "\(verify)")
        try FileManager.default.removeItem(atPath: link)

        try writeFile(restored.dataDirectory + "/tablespace_map", Array("\(oid) \(newLocation)\n".utf8))
        try handToPostgresUser(restored.dataDirectory + "/tablespace_map", recursive: false)
        try restored.appendCopySettings()
        try restored.start()
        #expect(try restored.sql("SELECT count(*) FROM t") == "1000")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == newLocation)
    }

    @Test func aKilledSessionFailsAtOnceASecondRunIsRefusedAndRetentionKeepsN() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-backup-kill")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let backups = try folder.makeDirectory("backups")
        let primary = try archivingCluster(pg, archive: archive, name: "primary-kill")
        try primary.start()
        defer { try? primary.stop() }
        let arguments = ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups, "-c", "fast"]

        /// Starts a slowed backup (WALFERRY_BACKUP_TEST_DELAY_MS: 20 ms a file, about 20 s for a fresh
        /// cluster) and waits until it is copying.
        func slowBackup() throws -> RunningProcess {
            let run = try startInBackground(walferryTool("walferry-backup"), arguments,
                                            environment: ["WALFERRY_BACKUP_TEST_DELAY_MS": "20"])
            try waitUntil("the backup is copying", timeout: 30) {
                (try listDirectory(backups)).contains { name in
                    name.hasPrefix(".walferry-backup-partial-") && entryExists(backups + "/" + name + "/base.tar.bz2")
                }
            }
            return run
        }

        // 1. The session is terminated mid-copy: exit 5 at once, nothing left.
        let killed = try slowBackup()
        // 2. Meanwhile a second run is refused at once, touching nothing.
        let second = try runTool("walferry-backup", arguments)
        #expect(second.status == 6)
        #expect(second.stderrLines == [
            "walferry-backup: error: another walferry-backup is already writing to \"\(backups)\"",
            "walferry-backup: hint: Wait for it to finish, or space the cron entries further apart; the lock is \"\(backups)/.walferry-backup.lock\".",
        ])
        #expect(try primary.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'walferry-backup'") == "1")
        #expect(try primary.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'walferry-backup'") == "t")
        let killedAt = Date()
        let killedOutcome = try killed.wait(timeout: 15)
        #expect(killedOutcome.status == 5 && !killedOutcome.signaled, "\(killedOutcome.stderr)")
        #expect(Date().timeIntervalSince(killedAt) < 5, "the backup went on for \(Date().timeIntervalSince(killedAt)) s")
        #expect(killedOutcome.stderrLines == [
            // The server's WARNING reaches the client before the FATAL that ends the session.
            "walferry-backup: warning: server: aborting backup due to backend exiting before pg_backup_stop was called",
            "walferry-backup: error: the backup's session ended before pg_backup_stop, so the backup is void: FATAL:  terminating connection due to administrator command",
            "walferry-backup: hint: Check the server log: the session was terminated, or the connection was lost.",
        ])
        #expect(try listDirectory(backups) == [".walferry-backup.lock"])

        // 3. SIGTERM mid-copy: exit 8, nothing left, and the server's backup is aborted with the session.
        let interrupted = try slowBackup()
        interrupted.signal(SIGTERM)
        let interruptedOutcome = try interrupted.wait(timeout: 15)
        #expect(interruptedOutcome.status == 8 && !interruptedOutcome.signaled, "\(interruptedOutcome.stderr)")
        #expect(interruptedOutcome.stderr == "walferry-backup: error: interrupted by signal 15 (SIGTERM); the backup was abandoned\n")
        #expect(try listDirectory(backups) == [".walferry-backup.lock"])

        // 4. Three backups with --keep 2: the two newest stay, with the WAL from the older one's start.
        var starts: [String] = []
        for round in 1...3 {
            try primary.sql("CREATE TABLE r\(round) AS SELECT generate_series(1, 1000) AS x")
            let run = try runTool("walferry-backup", arguments + ["--wal-archive", archive, "--keep", "2", "-v"])
            #expect(run.status == 0, "\(run)")
            let start = run.stderrLines.first { $0.contains("start WAL file ") }?.components(separatedBy: "start WAL file ").last?.prefix(24)
            starts.append(String(start ?? ""))
            if round == 3 {
                #expect(run.stderrLines.contains { $0.hasPrefix("walferry-backup: removed old backup \"") }, "\(run)")
                #expect(run.stderrLines.contains("walferry-backup: removed WAL older than \(starts[1]) from \"\(archive)\""), "\(run)")
            }
            usleep(1_000_000)  // distinct directory names, one second apart
        }
        let kept = try listDirectory(backups).filter { !$0.hasPrefix(".") }
        #expect(kept.count == 2, "\(kept)")
        let segments = try listDirectory(archive).filter { $0.count == 24 }
        #expect(segments.first == starts[1], "\(segments) \(starts)")
        #expect(segments.contains(starts[2]))
    }

    /// The archiver far behind at the stop. It takes ready files in name order, so the backup history
    /// file (named after the start segment) goes before the segments that follow the start: it says
    /// nothing of the stop segment. The backup must wait for that one, and carry every segment.
    @Test func aBackupWaitsForItsLastSegmentWhenTheArchiverIsBehind() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-backup-behind")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let backups = try folder.makeDirectory("backups")
        // Each file takes the archiver 1.5 s.
        let primary = try PostgresCluster(installation: pg, name: "primary-behind", settings: [
            "archive_mode": "on",
            "archive_command": "'sleep 1.5 && \(postgresReachableToolDirectory)/walferry-archive %p \(archive)/%f'",
        ])
        try primary.start()
        defer { try? primary.stop() }
        let running = try startInBackground(walferryTool("walferry-backup"),
                                        ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups, "-c", "fast",
                                         "--wal-archive", archive, "-v"],
                                        environment: ["WALFERRY_BACKUP_TEST_DELAY_MS": "5"])
        try waitUntil("the backup is copying", timeout: 30) {
            (try listDirectory(backups)).contains { $0.hasPrefix(".walferry-backup-partial-") && entryExists(backups + "/" + $0 + "/base.tar.bz2") }
        }
        // While the files are copied, four more segments become ready: six seconds of archiving.
        for round in 1...4 {
            _ = try primary.sql("CREATE TABLE behind\(round) AS SELECT generate_series(1, 1000) AS x")
            _ = try primary.sql("SELECT pg_switch_wal()")
        }
        let run = try running.wait(timeout: 120)
        #expect(run.status == 0 && !run.signaled, "\(run.stderr)")
        let lines = run.stderrLines
        let stopLine = try #require(lines.first { $0.contains(" start WAL file ") }, "\(run.stderr)")
        let start = try #require(stopLine.components(separatedBy: " start WAL file ").last.map { String($0.prefix(24)) })
        let added = try #require(lines.first { $0.contains("WAL segment(s) from") }, "\(run.stderr)")
        let count = Int(added.components(separatedBy: "added ").last?.split(separator: " ").first ?? "") ?? 0
        #expect(count >= 5, "\(added)")
        let backup = try #require(try listDirectory(backups).first { !$0.hasPrefix(".") })
        let walMembers = try tarMembers("/bin/tar", backups + "/" + backup + "/base.tar.bz2")
            .filter { $0.hasPrefix("pg_wal/") && $0.count == "pg_wal/".count + 24 }
        #expect(walMembers.count == count, "\(walMembers)")
        #expect(walMembers.first == "pg_wal/" + start, "\(walMembers)")
        // Each the archive's copy: the last is the stop segment, archived after the history file.
        for member in walMembers {
            #expect(entryExists(archive + "/" + member.dropFirst("pg_wal/".count)), "\(member)")
        }
    }

    /// A new cluster of version `major` that archives into a folder of the test's, with 500 rows in
    /// table t, started (the caller stops it), and walferry-backup's run into a single tarball with
    /// its WAL from that archive. The folder holds the archive and the tarball: keep it.
    func backUpANewCluster(major: Int) throws
        -> (PostgresInstallation, folder: TemporaryDirectory, archive: String, primary: PostgresCluster, tarball: String, outcome: ProcessOutcome) {
        let pg = try PostgresInstallation.version(major)
        let folder = try TemporaryDirectory(prefix: "walferry-backup-\(major)")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let primary = try archivingCluster(pg, archive: archive, name: "primary-\(major)")
        try primary.start()
        try primary.sql("CREATE TABLE t AS SELECT generate_series(1, 500) AS x")
        let tarball = folder.join("backup.tar.bz2")
        let outcome = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", tarball,
                                                      "-c", "fast", "--wal-archive", archive])
        return (pg, folder, archive, primary, tarball, outcome)
    }

    /// 14 (pg_start_backup/pg_stop_backup, the functions before 15) and 16 (pg_backup_start/stop): a
    /// version-1 manifest that their pg_verifybackup accepts, and a restore that recovers from the
    /// archive through walferry-restore with the primary's rows.
    @Test(arguments: [14, 16])
    func olderServersGetAVersion1ManifestThatTheirVerifierAccepts(major: Int) throws {
        let (pg, folder, archive, primary, tarball, outcome) = try backUpANewCluster(major: major)
        defer { withExtendedLifetime(folder) {} }  // it holds the archive and the tarball
        defer { try? primary.stop() }
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stdout == "" && outcome.stderr == "", "a successful run is silent: \(outcome)")
        let members = try tarMembers("/bin/tar", tarball)
        #expect(members.contains("backup_label") && members.contains("backup_manifest") && !members.contains("pg_wal/summaries/"))
        try primary.sql("INSERT INTO t SELECT generate_series(501, 600)")
        let lastSegment = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("\(lastSegment) is archived") { entryExists(archive + "/" + lastSegment) }

        let restored = try PostgresCluster(installation: pg, restoring: tarball)
        let manifest = try String(contentsOfFile: restored.dataDirectory + "/backup_manifest", encoding: .utf8)
        #expect(manifest.hasPrefix("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": ["), "\(manifest.prefix(80))")
        for arguments in [[restored.dataDirectory], ["-w", archive, restored.dataDirectory]] {
            let verify = try verifyBackup(pg, arguments)
            #expect(verify.status == 0 && verify.stdout == "backup successfully verified\n", "\(arguments): \(verify)")
        }
        guard try recoversThroughWalferryRestore(restored, archive: archive, timeout: 60) else { return }
        #expect(try restored.sql("SELECT count(*) FROM t") == "600")
    }

    /// 17 and 18: pg_backup_start/stop, a version-2 manifest (with the system identifier, which their
    /// pg_verifybackup compares with pg_control), pg_wal/summaries.
    @Test(arguments: [17, 18])
    func newerServersGetAVersion2ManifestThatTheirVerifierAccepts(major: Int) throws {
        let (pg, folder, _, primary, tarball, outcome) = try backUpANewCluster(major: major)
        defer { withExtendedLifetime(folder) {} }  // it holds the tarball
        defer { try? primary.stop() }
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try tarMembers("/bin/tar", tarball).contains("pg_wal/summaries/"))
        let restored = try PostgresCluster(installation: pg, restoring: tarball)
        let manifest = try String(contentsOfFile: restored.dataDirectory + "/backup_manifest", encoding: .utf8)
        let identifier = try primary.sql("SELECT system_identifier FROM pg_control_system()")
        #expect(manifest.hasPrefix("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": \(identifier),\n"))
        let verify = try verifyBackup(pg, [restored.dataDirectory])
        #expect(verify.status == 0 && verify.stdout == "backup successfully verified\n", "\(verify)")
        // Restored without an archive: crash recovery from the WAL in the tarball.
        try restored.appendCopySettings()
        try restored.start()
        #expect(try restored.sql("SELECT count(*) FROM t") == "500")
    }
}
