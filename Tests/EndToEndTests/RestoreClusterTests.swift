// walferry-restore where it is meant to run: as the restore_command of real PostgreSQL 15 servers
// that replay only from an archive that walferry-archive fills (no streaming). Like PostgreSQL's
// src/test/recovery/t/002_archiving.pl and 003_recovery_targets.pl, plus the two failure cases the
// tool exists for: a damaged archived segment stops a targeted recovery (instead of promoting early)
// and is retried by a standby until it is repaired.

import Foundation
import Testing
import TestSupport

/// A primary archiving with walferry-archive, and what a test needs around it.
final class ArchivingPrimary: @unchecked Sendable {
    // @unchecked: used by the one test that made it.
    let pg: PostgresInstallation
    let folder: TemporaryDirectory
    let archive: String
    let pattern: String
    let primary: PostgresCluster

    init(pattern: String) throws {
        pg = try PostgresInstallation.system()
        folder = try TemporaryDirectory(prefix: "walferry-restore-e2e")
        archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        self.pattern = pattern
        primary = try PostgresCluster(installation: pg, name: "primary", settings: [
            "archive_mode": "on",
            "archive_command": "'\(postgresReachableToolDirectory)/walferry-archive %p \(archive)/\(pattern)'",
        ])
        try primary.start()
        try primary.sql("CREATE TABLE t (id int, at timestamptz DEFAULT clock_timestamp())")
    }

    deinit { try? primary.stop() }

    /// restore_command for this archive, with `options`.
    func restoreCommand(_ options: String = "") -> String {
        "'\(postgresReachableToolDirectory)/walferry-restore \(options)\(options.isEmpty ? "" : " ")\(archive)/\(pattern) %p'"
    }

    /// Inserts `rows` rows in one transaction, then switches to a new segment; returns the name of the
    /// segment that holds the insert.
    @discardableResult
    func insertAndSwitch(_ rows: Int) throws -> String {
        try primary.sql("INSERT INTO t (id) SELECT generate_series(1, \(rows))")
        let name = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        return name
    }

    /// Waits until the server has archived `name` (and everything before it).
    func waitUntilArchived(_ name: String) throws {
        try waitUntil("the primary has archived \(name)", timeout: 120) {
            let archived = try primary.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            return archived.count == 24 && archived >= name
        }
        #expect(try primary.sql("SELECT failed_count FROM pg_stat_archiver") == "0", "\(primary.serverLog())")
    }

    /// The archive path of segment `name` as stored.
    func stored(_ name: String) -> String { archive + "/" + pattern.replacingOccurrences(of: "%f", with: name) }
}

/// True while the server of `cluster` runs (its postmaster.pid exists).
func serverRunning(_ cluster: PostgresCluster) -> Bool { entryExists(cluster.dataDirectory + "/postmaster.pid") }

@Suite struct RestoreClusterTests {
    @Test(arguments: [("%f", false), ("%f.bz2", false), ("%f.bz2", true)])
    func aStandbyReplaysFromTheArchiveOnly(_ pattern: String, _ prefetch: Bool) throws {
        let scene = try ArchivingPrimary(pattern: pattern)
        try scene.primary.sql("INSERT INTO t (id) SELECT generate_series(1, 1000)")
        var options = "--standby"
        if prefetch {
            let spool = try scene.folder.makeDirectory("spool", mode: 0o700)
            try handToPostgresUser(spool)
            options += " --prefetch 4 --spool \(spool)"
        }
        let standby = try PostgresCluster(baseBackupOf: scene.primary, settings: [
            "restore_command": scene.restoreCommand(options),
            "wal_retrieve_retry_interval": "'200ms'",
        ])
        try standby.start()
        defer { try? standby.stop() }

        var last = ""
        for round in 1...6 { last = try scene.insertAndSwitch(100 * round) }
        scene.waitUntilArchivedOrRecord(last)
        let rows = try scene.primary.sql("SELECT count(*) FROM t")
        #expect(rows == "3100")
        do {
            try waitUntil("the standby has replayed every archived row", timeout: 120) {
                (try? standby.sql("SELECT count(*) FROM t")) == rows
            }
        } catch {
            Issue.record("\(error)\nstandby log:\n\(standby.serverLog())")
            return
        }
        let log = standby.serverLog()
        #expect(log.contains("restored log file \"\(last)\" from archive"), "\(log)")
        #expect(!log.contains("walferry-restore: error"), "\(log)")
        #expect(!log.contains("started streaming WAL"))
        #expect(try listDirectory(standby.dataDirectory + "/pg_wal").filter { $0.hasPrefix(".") } == [])
        if prefetch {
            let spool = scene.folder.join("spool")
            #expect(entryExists(spool + "/walferry.spool"), "the spool was never used: \((try? listDirectory(spool)) ?? [])")
        }
    }

    @Test func aRecoveryToATimeStopsAtTheRightTransaction() throws {
        let scene = try ArchivingPrimary(pattern: "%f.bz2")
        let pitr = try PostgresCluster(baseBackupOf: scene.primary, name: "pitr", signal: "recovery.signal", settings: [
            "restore_command": scene.restoreCommand("--pitr"),
            "recovery_target_action": "'promote'",
        ])
        try scene.insertAndSwitch(100)
        try scene.primary.sql("INSERT INTO t (id) SELECT generate_series(1, 23)")
        let target = try scene.primary.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        usleep(1_200_000)
        try scene.primary.sql("INSERT INTO t (id) SELECT generate_series(1, 1000)")
        let last = try scene.insertAndSwitch(7)
        scene.waitUntilArchivedOrRecord(last)

        try pitr.appendSettings(["recovery_target_time": "'\(target)'"])
        try pitr.start()
        defer { try? pitr.stop() }
        do {
            try waitUntil("the recovery has reached its target and promoted", timeout: 120) {
                (try? pitr.sql("SELECT pg_is_in_recovery()")) == "f"
            }
        } catch {
            Issue.record("\(error)\nlog:\n\(pitr.serverLog())")
            return
        }
        #expect(try pitr.sql("SELECT count(*) FROM t") == "123")
        #expect(try pitr.sql("SELECT max(at) <= '\(target)' FROM t") == "t")
        let log = pitr.serverLog()
        #expect(log.contains("recovery stopping before commit of transaction"), "\(log)")
        #expect(!log.contains("walferry-restore: error"), "\(log)")
    }

    /// A primary that archived four more segments after the base backup, the second of them damaged
    /// in the archive (one byte of its .bz2 changed); the original bytes are returned for repair.
    static func damagedArchive(signal: String) throws -> (ArchivingPrimary, PostgresCluster, damaged: String, original: [UInt8]) {
        let scene = try ArchivingPrimary(pattern: "%f.bz2")
        try scene.primary.sql("INSERT INTO t (id) SELECT generate_series(1, 10)")
        let node = try PostgresCluster(baseBackupOf: scene.primary, name: "recovery", signal: signal, settings: [
            // No --standby or --pitr: the signal file decides.
            "restore_command": scene.restoreCommand(),
            "wal_retrieve_retry_interval": "'200ms'",
        ])
        var names: [String] = []
        for _ in 1...4 { names.append(try scene.insertAndSwitch(100)) }
        scene.waitUntilArchivedOrRecord(names[3])
        let damaged = names[1]
        let path = scene.stored(damaged)
        let original = try readFile(path)
        var bytes = original
        bytes[bytes.count / 2] ^= 0x55
        try writeFile(path, bytes)
        return (scene, node, damaged, original)
    }

    @Test func aDamagedSegmentStopsATargetedRecoveryInsteadOfPromoting() throws {
        let (scene, recovery, damaged, original) = try Self.damagedArchive(signal: "recovery.signal")
        try? recovery.start()  // pg_ctl may see the server come up (consistent) before it stops, or not
        do {
            try waitUntil("the recovery has stopped", timeout: 120) { !serverRunning(recovery) }
        } catch {
            Issue.record("\(error)\nlog:\n\(recovery.serverLog())")
            try? recovery.stop(mode: "immediate")
            return
        }
        let log = recovery.serverLog()
        #expect(log.contains("walferry-restore: error: could not decompress file \"\(scene.stored(damaged))\": compressed data is"), "\(log)")
        #expect(log.contains("walferry-restore: detail: Targeted recovery (recovery.signal): exit status 202, so that the server stops instead of ending recovery early."))
        #expect(log.contains("FATAL:  could not restore file \"\(damaged)\" from archive: child process exited with exit code 202"), "\(log)")
        #expect(!log.contains("selected new timeline ID"), "\(log)")
        #expect(!log.contains("archive recovery complete"))
        #expect(!entryExists(scene.archive + "/00000002.history"))
        #expect(entryExists(recovery.dataDirectory + "/recovery.signal"))

        // Repaired, the same recovery goes on to the end of the archive, and only then promotes.
        try writeFile(scene.stored(damaged), original)
        try recovery.start()
        defer { try? recovery.stop() }
        try waitUntil("the recovery has promoted", timeout: 120) { (try? recovery.sql("SELECT pg_is_in_recovery()")) == "f" }
        #expect(try recovery.sql("SELECT count(*) FROM t") == "410")
    }

    @Test func aDamagedSegmentIsLoggedAndRetriedOnAStandby() throws {
        let (scene, standby, damaged, original) = try Self.damagedArchive(signal: "standby.signal")
        try standby.start()
        defer { try? standby.stop() }
        let error = "walferry-restore: error: could not decompress file \"\(scene.stored(damaged))\": compressed data is"
        do {
            try waitUntil("the standby has retried the damaged segment", timeout: 120) {
                standby.serverLog().components(separatedBy: error).count > 3
            }
        } catch {
            Issue.record("\(error)\nlog:\n\(standby.serverLog())")
            return
        }
        let log = standby.serverLog()
        #expect(log.contains("walferry-restore: detail: Standby mode (standby.signal): exit status 1, so that the server retries later, or streams meanwhile."))
        #expect(!log.contains("FATAL"), "\(log)")
        #expect(serverRunning(standby))
        #expect(try standby.sql("SELECT pg_is_in_recovery()") == "t")
        #expect(try standby.sql("SELECT count(*) FROM t") == "110")
        #expect(!entryExists(standby.dataDirectory + "/pg_wal/RECOVERYXLOG"))

        try writeFile(scene.stored(damaged), original)
        try waitUntil("the standby has replayed past the repaired segment", timeout: 120) {
            (try? standby.sql("SELECT count(*) FROM t")) == "410"
        }
    }
}

extension ArchivingPrimary {
    /// waitUntilArchived, recording the primary's log on failure instead of throwing past it.
    func waitUntilArchivedOrRecord(_ name: String) {
        do {
            try waitUntilArchived(name)
        } catch {
            Issue.record("\(error)\nprimary log:\n\(primary.serverLog())")
        }
    }
}
