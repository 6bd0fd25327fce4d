// walferry-recover against real servers, as an operator would use it: a standby made from a backup
// taken under pgbench load, which streams from its primary and falls back to the archive through
// walferry-restore when the walsender is gone (PostgreSQL 15, 17 and 18); a point-in-time recovery
// between two marked transactions, from the newest backup that ended before the target; a tablespace
// remapped with -T; a flipped byte refused with nothing left; a running server's data directory
// refused; kill -9 and SIGTERM at random moments, never a data directory under the final name; a
// full disk (FUSE, ENOSPC) and a target that is a mount point, refused with nothing left; and
// --force keeping the old directory until the new one is complete.
//
// Like pgBackRest's restore tests and PostgreSQL's src/bin/pg_basebackup/t/010_pg_basebackup.pl (-T,
// -R), on throwaway clusters (TestSupport/PostgresCluster.swift, RecoverSupport.swift).

import Foundation
import Testing
import TestSupport

/// The names in `path`, or [] when it does not exist.
private func names(_ path: String) -> [String] { (try? listDirectory(path)) ?? [] }

@Suite(.serialized) struct RecoverClusterTests {
    /// A primary archiving through walferry-archive, with pgbench's tables, and a walferry-backup of it
    /// into a directory of backups taken while pgbench writes.
    func primaryWithABackupUnderLoad(_ pg: PostgresInstallation, folder: TemporaryDirectory, name: String)
        throws -> (primary: PostgresCluster, archive: String, backups: String, bench: [String]) {
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let backups = try folder.makeDirectory("backups")
        let primary = try archivingCluster(pg, archive: archive, name: name)
        try primary.start()
        let bench = ["-h", primary.socketDirectory, "-p", "\(primary.port)", "-U", "postgres"]
        let initialise = try runProcess(pg.tool("pgbench"), ["-i", "-s", "1", "-q"] + bench + ["postgres"])
        guard initialise.status == 0 else { throw TestFailure("pgbench -i: \(initialise)") }
        let load = try startInBackground(pg.tool("pgbench"), ["-n", "-c", "2", "-T", "4"] + bench + ["postgres"])
        usleep(300_000)
        let backup = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups,
                                                     "-c", "fast", "--wal-archive", archive])
        guard backup.status == 0 else { throw TestFailure("walferry-backup: \(backup)") }
        _ = try load.wait(timeout: 60)
        return (primary, archive, backups, bench)
    }

    @Test(arguments: [15, 17, 18])
    func aStandbyStreamsFromItsPrimaryThenFallsBackToTheArchive(major: Int) throws {
        let pg = try PostgresInstallation.version(major)
        let folder = try TemporaryDirectory(prefix: "walferry-recover-standby-\(major)")
        let (primary, archive, backups, bench) = try primaryWithABackupUnderLoad(pg, folder: folder, name: "primary-\(major)")
        defer { try? primary.stop() }

        let standby = try clusterToRecoverInto(pg, name: "standby-\(major)")
        let outcome = try runRecoverTool(["-B", backups, "-D", standby.dataDirectory, "--standby", "--wal-archive", archive,
                                          "--primary-conninfo", conninfo(primary) + " application_name=walferry_standby"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stdout == "" && outcome.stderr == "", "silent without a terminal: \(outcome)")
        #expect(entryExists(standby.dataDirectory + "/standby.signal") && !entryExists(standby.dataDirectory + "/recovery.signal"))
        let autoConf = fileText(standby.dataDirectory + "/postgresql.auto.conf")
        #expect(autoConf.contains("restore_command = '\(postgresReachableToolDirectory)/walferry-restore --standby \(archive)/%f %p'\n"))
        #expect(!autoConf.contains("archive_mode = off"), "a standby keeps the primary's archive_mode (it does not archive)")
        // Owned by postgres (the folder's owner), pg_control included.
        var info = stat()
        #expect(stat(standby.dataDirectory + "/global/pg_control", &info) == 0 && (!runningAsRoot || info.st_uid != 0))

        try standby.appendSettings(["unix_socket_directories": "'\(standby.socketDirectory)'", "hot_standby": "on"])
        try standby.start()
        try waitUntil("the standby streams", timeout: 60) {
            (try? primary.sql("SELECT state FROM pg_stat_replication WHERE application_name = 'walferry_standby'")) == "streaming"
        }
        let more = try runProcess(pg.tool("pgbench"), ["-n", "-c", "2", "-t", "100"] + bench + ["postgres"])
        #expect(more.status == 0, "\(more)")
        let streamed = try pgbenchState { try primary.sql($0) }
        try waitUntil("the standby has the streamed changes", timeout: 60) { (try? pgbenchState { try standby.sql($0) }) == streamed }

        // The walsender gone and replication refused: the standby follows the archive alone.
        let hba = primary.dataDirectory + "/pg_hba.conf"
        try writeFile(hba, Array(("local replication all reject\n" + fileText(hba)).utf8))
        try primary.sql("SELECT pg_reload_conf()")
        try primary.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
        try waitUntil("the walsender is gone", timeout: 30) { try primary.sql("SELECT count(*) FROM pg_stat_replication") == "0" }
        let fromArchive = try runProcess(pg.tool("pgbench"), ["-n", "-c", "2", "-t", "100"] + bench + ["postgres"])
        #expect(fromArchive.status == 0, "\(fromArchive)")
        let later = try pgbenchState { try primary.sql($0) }
        let lastSegment = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("\(lastSegment) is archived") { entryExists(archive + "/" + lastSegment) }
        do {
            try waitUntil("the standby caught up through the archive", timeout: 120) { (try? pgbenchState { try standby.sql($0) }) == later }
        } catch {
            Issue.record("\(error)\n\(standby.serverLog())")
            return
        }
        #expect(standby.serverLog().contains("restored log file \"\(lastSegment)\" from archive"))
        #expect(try primary.sql("SELECT count(*) FROM pg_stat_replication") == "0")
        #expect(try standby.sql("SELECT pg_is_in_recovery()") == "t")
        try standby.stop()
    }

    @Test func aPointInTimeRecoveryStopsBetweenTwoMarkedTransactionsFromTheNewestBackupBeforeIt() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-recover-pitr")
        let (primary, archive, backups, _) = try primaryWithABackupUnderLoad(pg, folder: folder, name: "primary-pitr")
        defer { try? primary.stop() }
        let first = try listDirectory(backups).filter { !$0.hasPrefix(".") }
        try primary.sql("CREATE TABLE marks (name text)")
        try primary.sql("INSERT INTO marks VALUES ('first')")
        sleep(1)
        let target = try primary.sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        sleep(1)
        try primary.sql("INSERT INTO marks VALUES ('second')")
        sleep(1)
        // A later backup, which ended after the target: not the one to choose.
        let later = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups, "-c", "fast",
                                                    "--wal-archive", archive])
        #expect(later.status == 0, "\(later)")
        let lastSegment = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("\(lastSegment) is archived") { entryExists(archive + "/" + lastSegment) }

        let copy = try clusterToRecoverInto(pg, name: "pitr")
        let outcome = try runRecoverTool(["-B", backups, "-D", copy.dataDirectory, "--pitr", "--wal-archive", archive,
                                          "--target-time", target, "--target-action", "promote", "-v"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines.first == "walferry-recover: backup \"\(first.first ?? "")\" chosen from \"\(backups)\"", "\(outcome)")
        #expect(entryExists(copy.dataDirectory + "/recovery.signal"))
        try copy.appendSettings(["unix_socket_directories": "'\(copy.socketDirectory)'"])
        try copy.start()
        do {
            try waitUntil("the copy reached its target and promoted", timeout: 120) { (try? copy.sql("SELECT pg_is_in_recovery()")) == "f" }
        } catch {
            Issue.record("\(error)\n\(copy.serverLog())")
            return
        }
        #expect(try copy.sql("SELECT string_agg(name, ',') FROM marks") == "first")
        #expect(try copy.sql("SHOW archive_mode") == "off")
        #expect(try copy.sql("SHOW recovery_target_time").hasPrefix(String(target.prefix(19))))
    }

    @Test func aTablespaceIsRemappedWithT() throws {
        let (pg, folder, archive, location, backups, primary, oid) = try primaryWithATablespace(prefix: "walferry-recover-ts")
        defer { try? primary.stop() }
        defer { withExtendedLifetime(folder) {} }  // it holds the archive, the tablespace and the backups
        let backup = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups,
                                                     "-c", "fast", "--wal-archive", archive])
        #expect(backup.status == 0, "\(backup)")

        let copy = try clusterToRecoverInto(pg, name: "ts-copy")
        let newLocation = copy.folder.join("ts1-moved/inner")
        // The original location is in use: refused before anything is written.
        let refused = try runRecoverTool(["-B", backups, "-D", copy.dataDirectory, "--pitr", "--wal-archive", archive])
        #expect(refused.status == 4)
        #expect(refused.stderrLines.first == "walferry-recover: error: tablespace directory \"\(location)\" exists but is not empty")
        #expect(names(copy.dataDirectory) == [] && !names(copy.folder.path).contains(".data.walferry-recover-partial"))

        let outcome = try runRecoverTool(["-B", backups, "-D", copy.dataDirectory, "--pitr", "--wal-archive", archive,
                                          "-T", "\(location)=\(newLocation)"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: copy.dataDirectory + "/pg_tblspc/\(oid)") == newLocation)
        #expect(fileText(copy.dataDirectory + "/tablespace_map") == "\(oid) \(newLocation)\n")
        #expect(names(newLocation).count == 1 && names(newLocation)[0].hasPrefix("PG_15_"))
        try copy.appendSettings(["unix_socket_directories": "'\(copy.socketDirectory)'"])
        try copy.start()
        try waitUntil("the copy promoted", timeout: 120) { (try? copy.sql("SELECT pg_is_in_recovery()")) == "f" }
        #expect(try copy.sql("SELECT count(*) FROM t") == "1000")
        #expect(try copy.sql("SELECT pg_tablespace_location(\(oid))") == newLocation)
    }

    /// One backup for the refusal tests: a small cluster, backed up into a directory of backups.
    func smallBackup(_ folder: TemporaryDirectory) throws -> (primary: PostgresCluster, archive: String, backups: String, backup: String) {
        let pg = try PostgresInstallation.system()
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let backups = try folder.makeDirectory("backups")
        let primary = try archivingCluster(pg, archive: archive, name: "primary-small")
        try primary.start()
        try primary.sql("CREATE TABLE t AS SELECT generate_series(1, 200000) AS x")
        let outcome = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups,
                                                      "-c", "fast", "--wal-archive", archive])
        guard outcome.status == 0 else { throw TestFailure("walferry-backup: \(outcome)") }
        return (primary, archive, backups, backups + "/" + (try listDirectory(backups).last ?? ""))
    }

    @Test func aFlippedByteIsRefusedAndNothingIsLeftARunningServerIsRefused() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-recover-refuse")
        let (primary, archive, backups, backup) = try smallBackup(folder)
        defer { try? primary.stop() }
        let target = try folder.makeDirectory("restore")
        try handToPostgresUser(target)  // the files go to the parent's owner
        let data = target + "/data"

        // A running server's data directory, with and without --force.
        for force in [[], ["--force"]] {
            let outcome = try runRecoverTool(["-B", backups, "-D", primary.dataDirectory, "--pitr"] + force)
            #expect(outcome.status == 4)
            let pid = fileText(primary.dataDirectory + "/postmaster.pid").split(separator: "\n").first.map(String.init) ?? "?"
            #expect(outcome.stderrLines == [
                "walferry-recover: error: a server (PID \(pid)) is running in data directory \"\(primary.dataDirectory)\"",
                "walferry-recover: hint: Stop it first (pg_ctl stop, or systemctl stop); --force never replaces a running server's data directory.",
            ])
        }
        #expect(try primary.sql("SELECT count(*) FROM t") == "200000")

        // One flipped byte in the tarball: refused, nothing left.
        let tarball = backup + "/base.tar.bz2"
        let original = try Array(Data(contentsOf: URL(fileURLWithPath: tarball)))
        var flipped = original
        flipped[flipped.count - 3] ^= 0x01  // the last stream's CRC: every block decodes, the end check fails
        try writeFile(tarball, flipped)
        let damaged = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive])
        #expect(damaged.status == 3)
        #expect(damaged.stderrLines == ["walferry-recover: error: could not decompress file \"\(tarball)\": compressed data is corrupt (CRC mismatch or invalid block)"])
        #expect(names(target) == [])
        // And in the middle: refused as damaged, whichever check sees it first.
        flipped = original
        flipped[flipped.count / 2] ^= 0x01
        try writeFile(tarball, flipped)
        let middle = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive])
        #expect(middle.status == 3, "\(middle)")
        #expect(middle.stderrLines.count == 1 && middle.stderrLines[0].hasPrefix("walferry-recover: error: "), "\(middle)")
        #expect(names(target) == [])
        try writeFile(tarball, original)

        // Restored whole, the tarball's own WAL enough without an archive.
        let manifestOnly = try runRecoverTool(["-B", backups, "-D", data, "--pitr"])
        #expect(manifestOnly.status == 0, "the tarball holds its WAL: \(manifestOnly)")
        #expect(names(target) == ["data"])
    }

    @Test func killedOrInterruptedAtAnyMomentItNeverLeavesADataDirectoryUnderTheFinalName() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-recover-kill")
        let (primary, archive, backups, _) = try smallBackup(folder)
        defer { try? primary.stop() }
        let target = try folder.makeDirectory("restore")
        try handToPostgresUser(target)  // the files go to the parent's owner
        let data = target + "/data"
        var generator = SystemRandomNumberGenerator()
        var completed = 0
        for round in 0..<6 {
            let run = try startRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive, "-j", "2"])
            usleep(UInt32.random(in: 0...600_000, using: &generator))
            run.signal(round % 2 == 0 ? SIGKILL : SIGTERM)
            let outcome = try run.wait(timeout: 60)
            if entryExists(data) {
                // It finished before the signal: then it is whole and verified.
                #expect(outcome.status == 0 && !outcome.signaled, "round \(round): \(outcome)")
                #expect(entryExists(data + "/global/pg_control") && entryExists(data + "/recovery.signal"))
                try FileManager.default.removeItem(atPath: data)
                completed += 1
            } else if round % 2 == 1 && !outcome.signaled {
                #expect(outcome.status == 7, "round \(round): \(outcome)")
                #expect(outcome.stderrLines == ["walferry-recover: error: interrupted by signal 15 (SIGTERM); nothing was left under \"\(data)\""])
                #expect(names(target) == [], "SIGTERM removes the temporary sibling")
            }
            #expect(names(target).allSatisfy { $0 == ".data.walferry-recover-partial" }, "round \(round): \(names(target))")
        }
        // The next run removes what a killed one left, and succeeds.
        let outcome = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(names(target) == ["data"])
        _ = completed
    }

    @Test func forceKeepsTheOldDataDirectoryUntilTheNewOneIsComplete() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-recover-force")
        let (primary, archive, backups, backup) = try smallBackup(folder)
        defer { try? primary.stop() }
        let target = try folder.makeDirectory("restore")
        let data = try folder.makeDirectory("restore/data", mode: 0o700)
        try writeFile(data + "/old-marker", Array("old\n".utf8))
        try handToPostgresUser(target)  // the files go to the parent's owner

        let refused = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive])
        #expect(refused.status == 4)
        #expect(refused.stderrLines == [
            "walferry-recover: error: data directory \"\(data)\" is not empty",
            "walferry-recover: hint: Give --force to replace it: the old one is moved to a named sibling once the new one is complete, never deleted.",
        ])
        // A damaged backup with --force: the old directory stays, untouched.
        let tarball = backup + "/base.tar.bz2"
        let original = try Array(Data(contentsOf: URL(fileURLWithPath: tarball)))
        var flipped = original
        flipped[flipped.count - 3] ^= 0x01
        try writeFile(tarball, flipped)
        let damaged = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive, "--force"])
        #expect(damaged.status == 3)
        #expect(names(target) == ["data"] && names(data) == ["old-marker"])
        try writeFile(tarball, original)

        let outcome = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--wal-archive", archive, "--force"])
        #expect(outcome.status == 0, "\(outcome)")
        let aside = names(target).filter { $0.hasPrefix("data.walferry-recover-old-") }
        #expect(aside.count == 1 && names(target).count == 2, "\(names(target))")
        #expect(outcome.stderrLines == ["walferry-recover: the old data directory was moved to \"\(target)/\(aside.first ?? "")\""])
        #expect(names(target + "/" + (aside.first ?? "")) == ["old-marker"])
        #expect(entryExists(data + "/global/pg_control") && !entryExists(data + "/old-marker"))
    }

    /// A full disk midway (FUSE: ENOSPC on the write of global/pg_control, the last file) and a target
    /// that is a mount point: each refused with its status and message, nothing left under the name.
    @Test func aFullDiskAndAMountPointAreRefusedWithNothingLeft() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-recover-full")
        let (primary, archive, backups, _) = try smallBackup(folder)
        defer { try? primary.stop() }
        let faults = try FaultFileSystem()

        // The mount point itself as the target: its temporary sibling would be on another file system.
        let mounted = try runRecoverTool(["-B", backups, "-D", faults.path, "--pitr", "--wal-archive", archive, "--owner", "postgres"])
        #expect(mounted.status == 4)
        let parent = URL(fileURLWithPath: faults.path).deletingLastPathComponent().path
        #expect(mounted.stderrLines == [
            "walferry-recover: error: data directory \"\(faults.path)\" is a mount point, on another file system than its parent \"\(parent)\"",
            "walferry-recover: hint: walferry-recover builds the data directory next to it and renames it into place; give a directory inside the mount point.",
        ])

        let target = faults.join("restore")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        try handToPostgresUser(target)
        try faults.setFaults([.error("ENOSPC", on: "write", name: "pg_control", times: 1)])
        let full = try runRecoverTool(["-B", backups, "-D", target + "/data", "--pitr", "--wal-archive", archive])
        #expect(full.status == 1)
        #expect(full.stderrLines == [
            "walferry-recover: error: could not write to file \"\(target)/.data.walferry-recover-partial/global/pg_control\": No space left on device",
        ])
        #expect(try faults.takeFired().count == 1)
        #expect(names(target) == [])
        try faults.clearFaults()
        let again = try runRecoverTool(["-B", backups, "-D", target + "/data", "--pitr", "--wal-archive", archive])
        #expect(again.status == 0, "\(again)")
        #expect(names(target) == ["data"])
    }

    /// A single tarball (walferry-backup -o FILE), whose manifest is its last member, of PostgreSQL 17
    /// (a version-2 manifest): verified once the manifest arrives, recovered, started.
    @Test func aSingleTarballOf17Recovers() throws {
        let (pg, folder, archive, primary, tarball, backup) = try BackupClusterTests().backUpANewCluster(major: 17)
        defer { withExtendedLifetime(folder) {} }
        defer { try? primary.stop() }
        #expect(backup.status == 0, "\(backup)")
        let copy = try clusterToRecoverInto(pg, name: "single-17")
        let outcome = try runRecoverTool(["-B", tarball, "-D", copy.dataDirectory, "--pitr", "--wal-archive", archive,
                                          "--target-immediate", "--target-action", "promote"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(entryExists(copy.dataDirectory + "/backup_manifest"))
        let verify = try verifyBackup(pg, ["-n", "-e", copy.dataDirectory])
        #expect(verify.status == 0, "pg_verifybackup on the recovered directory: \(verify)")
        try copy.appendSettings(["unix_socket_directories": "'\(copy.socketDirectory)'"])
        try copy.start()
        try waitUntil("the copy promoted", timeout: 120) { (try? copy.sql("SELECT pg_is_in_recovery()")) == "f" }
        #expect(try copy.sql("SELECT count(*) FROM t") == "500")
    }
}
