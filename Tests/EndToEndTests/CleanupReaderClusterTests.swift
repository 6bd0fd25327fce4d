// Two archive-only standbys and the backups on one archive, each standby cleaning it up at its
// restartpoints with walferry-cleanup --reader: the classic setup's "one or more read-only standbys"
// made safe. Like PostgreSQL's src/test/recovery/t/002_archiving.pl, with a second standby that is
// stopped while the first one's restartpoints go on, and a walferry backup taken meanwhile.

import Foundation
import Testing
import TestSupport

@Suite struct CleanupReaderClusterTests {
    /// The oldest WAL file a reader's record holds.
    static func position(of reader: String, in archive: String) throws -> String {
        let text = String(decoding: try readFile(archive + "/walferry.readers/" + reader), as: UTF8.self)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("oldest kept wal file: ") })
        return String(line.dropFirst("oldest kept wal file: ".count))
    }

    /// The segments in the archive, by their name without the timeline (the cleanup's order).
    static func segments(_ archive: String) throws -> [String] {
        try listDirectory(archive).filter { $0.count == 24 }.sorted { $0.dropFirst(8) < $1.dropFirst(8) }
    }

    /// A few segments' worth of WAL and a checkpoint, all archived: `rounds` switches after inserts,
    /// then a checkpoint in a segment that is switched out too, so that a standby can make a restartpoint.
    static func produceWAL(_ primary: PostgresCluster, archive: String, rounds: Int = 3) throws {
        for _ in 1...rounds {
            try primary.sql("INSERT INTO t SELECT generate_series(1, 100)")
            try primary.sql("SELECT pg_switch_wal()")
        }
        try primary.sql("CHECKPOINT")
        try primary.sql("INSERT INTO t SELECT generate_series(1, 7)")
        let last = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("\(last) is archived") { entryExists(archive + "/" + last) }
    }

    /// Waits until `standby` has every row of the primary, then makes a restartpoint, which runs its
    /// archive_cleanup_command.
    static func replayAndRestart(_ standby: PostgresCluster, rows: String) throws {
        do {
            try waitUntil("the standby has replayed every row", timeout: 120) {
                (try? standby.sql("SELECT count(*) FROM t")) == rows
            }
        } catch {
            Issue.record("\(error)\n\(standby.serverLog())")
            throw error
        }
        try standby.sql("CHECKPOINT")
    }

    /// A started PostgreSQL 15 primary archiving through walferry-archive into `archive`, with 1,000
    /// rows in table t, and an empty `backups` directory; both folders belong to the postgres user.
    static func archivingPrimary(_ prefix: String) throws
        -> (PostgresInstallation, folder: TemporaryDirectory, archive: String, backups: String, primary: PostgresCluster) {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: prefix)
        let archive = try folder.makeDirectory("archive")
        let backups = try folder.makeDirectory("backups")
        try handToPostgresUser(archive)
        try handToPostgresUser(backups)
        let primary = try archivingCluster(pg, archive: archive, name: "primary")
        try primary.start()
        try primary.sql("CREATE TABLE t (id int)")
        try primary.sql("INSERT INTO t SELECT generate_series(1, 1000)")
        return (pg, folder, archive, backups, primary)
    }

    @Test func twoStandbysAndABackupShareOneArchive() throws {
        let (pg, folder, archive, backups, primary) = try Self.archivingPrimary("walferry-readers")
        defer { withExtendedLifetime(folder) {} }
        defer { try? primary.stop() }

        // Two archive-only standbys, each registered (as root, as a DBA would) at its base backup's
        // start segment before it starts.
        var standbys: [String: PostgresCluster] = [:]
        for name in ["standby-a", "standby-b"] {
            let standby = try PostgresCluster(baseBackupOf: primary, name: name, settings: [
                "restore_command": "'\(postgresReachableToolDirectory)/walferry-restore --standby \(archive)/%f %p'",
                "archive_cleanup_command": "'\(postgresReachableToolDirectory)/walferry-cleanup -d --reader \(name) --backups \(backups) \(archive) %r'",
                "hot_standby": "on",
            ])
            let label = String(decoding: try readFile(standby.dataDirectory + "/backup_label"), as: UTF8.self)
            let start = try #require(label.split(separator: "(file ").dropFirst().first?.prefix(24)).description
            let register = try runTool("walferry-cleanup", ["--register", name, archive, start])
            #expect(register.status == 0 && register.stderr == "", "\(register)")
            try standby.start()
            standbys[name] = standby
        }
        let a = try #require(standbys["standby-a"]), b = try #require(standbys["standby-b"])
        defer { try? a.stop(); try? b.stop() }
        #expect(try listDirectory(archive + "/walferry.readers") == [".lock", "standby-a", "standby-b"])

        // Both replay and clean up: the archive shrinks to what the later of the two still needs.
        try Self.produceWAL(primary, archive: archive)
        var rows = try primary.sql("SELECT count(*) FROM t")
        try Self.replayAndRestart(a, rows: rows)
        try Self.replayAndRestart(b, rows: rows)
        let positionB = try Self.position(of: "standby-b", in: archive)

        // standby-b stops for maintenance. standby-a's restartpoints go on, and keep everything that
        // standby-b will need.
        try b.stop()
        for _ in 1...2 {
            try Self.produceWAL(primary, archive: archive)
            rows = try primary.sql("SELECT count(*) FROM t")
            try Self.replayAndRestart(a, rows: rows)
        }
        let positionA = try Self.position(of: "standby-a", in: archive)
        #expect(positionB.dropFirst(8) < positionA.dropFirst(8), "standby-a did not move past standby-b: \(positionA), \(positionB)")
        #expect(a.serverLog().contains("walferry-cleanup: keeping WAL file \"\(archive)/\(positionB)\" and later, which reader \"standby-b\" still needs"),
                "\(a.serverLog())")
        var left = try Self.segments(archive)
        #expect(left.first == positionB, "\(left)")

        // standby-b comes back and catches up from the archive alone; then the cleanup proceeds.
        try b.start()
        try Self.produceWAL(primary, archive: archive)
        rows = try primary.sql("SELECT count(*) FROM t")
        try Self.replayAndRestart(b, rows: rows)
        try Self.replayAndRestart(a, rows: rows)
        left = try Self.segments(archive)
        #expect(!left.contains(positionB), "standby-b's old position is still kept: \(left)")
        let oldest = [try Self.position(of: "standby-a", in: archive), try Self.position(of: "standby-b", in: archive)]
            .min { $0.dropFirst(8) < $1.dropFirst(8) }
        #expect(left.first == oldest, "\(left)")

        // A backup: both standbys' cleanups keep its WAL, and a point-in-time recovery from it works.
        // As the postgres user, from whose cron it would run: the standbys' cleanups read its manifest.
        let backup = try runAsPostgresUser(walferryTool("walferry-backup"), ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups,
                                                      "-c", "fast", "--wal-archive", archive])
        #expect(backup.status == 0, "\(backup)")
        let backupName = try #require(try listDirectory(backups).first { !$0.hasPrefix(".") })
        try primary.sql("INSERT INTO t SELECT generate_series(1, 11)")
        let rowsAfterBackup = try primary.sql("SELECT count(*) FROM t")
        for _ in 1...2 {
            try Self.produceWAL(primary, archive: archive)
            rows = try primary.sql("SELECT count(*) FROM t")
            try Self.replayAndRestart(a, rows: rows)
            try Self.replayAndRestart(b, rows: rows)
        }
        let heldLine = "which backup \"\(backups)/\(backupName)\" still needs"
        #expect(a.serverLog().contains(heldLine) && b.serverLog().contains(heldLine), "\(a.serverLog())")
        left = try Self.segments(archive)
        let backupStart = try #require(left.first)
        #expect(a.serverLog().contains("keeping WAL file \"\(archive)/\(backupStart)\" and later, \(heldLine)"))

        let restored = try PostgresCluster(installation: pg, restoring: backups + "/" + backupName + "/base.tar.bz2")
        defer { try? restored.stop() }
        guard try recoversThroughWalferryRestore(restored, archive: archive, timeout: 120) else { return }
        let restoredRows = Int(try restored.sql("SELECT count(*) FROM t")) ?? 0
        #expect(restoredRows >= Int(rowsAfterBackup) ?? .max, "the recovery stopped early: \(restoredRows) rows")
    }

    /// walferry-recover --reader registers the standby it makes before putting it in place, at the first
    /// segment it will fetch from the archive, and gives it an archive_cleanup_command that reports as
    /// that reader: its restartpoints move the record on.
    @Test func aStandbyMadeByWalferryRecoverRegistersAndReports() throws {
        let (pg, folder, archive, backups, primary) = try Self.archivingPrimary("walferry-readers-recover")
        defer { withExtendedLifetime(folder) {} }
        defer { try? primary.stop() }
        let backup = try runAsPostgresUser(walferryTool("walferry-backup"), ["-d", conninfo(primary), "-D", primary.dataDirectory,
                                                                             "-o", backups, "-c", "fast", "--wal-archive", archive])
        #expect(backup.status == 0, "\(backup)")
        let stopSegment = try #require(try Self.segments(archive).last)

        let standby = try clusterToRecoverInto(pg, name: "standby-r")
        let outcome = try runRecoverTool(["-B", backups, "-D", standby.dataDirectory, "--standby", "--wal-archive", archive,
                                          "--reader", "standby-r"])
        #expect(outcome.status == 0 && outcome.stderr == "", "\(outcome)")
        // The backup holds its WAL from start to stop: the standby's first segment from the archive is
        // the one after the stop.
        let registered = try Self.position(of: "standby-r", in: archive)
        #expect(registered.dropFirst(8) > stopSegment.dropFirst(8), "registered at \(registered), the backup stopped in \(stopSegment)")
        let autoConf = fileText(standby.dataDirectory + "/postgresql.auto.conf")
        #expect(autoConf.contains("archive_cleanup_command = '\(postgresReachableToolDirectory)/walferry-cleanup --reader standby-r -x .bz2 \(archive) %r'\n"),
                "\(autoConf)")

        try standby.appendSettings(["unix_socket_directories": "'\(standby.socketDirectory)'", "hot_standby": "on"])
        try standby.start()
        defer { try? standby.stop() }
        for _ in 1...2 {
            try Self.produceWAL(primary, archive: archive)
            try Self.replayAndRestart(standby, rows: try primary.sql("SELECT count(*) FROM t"))
        }
        let reported = try Self.position(of: "standby-r", in: archive)
        #expect(reported.dropFirst(8) > registered.dropFirst(8), "the standby's restartpoints did not report: still at \(reported)")
        #expect(try Self.segments(archive).first == reported, "the cleanup kept more or less than the only reader needs")
    }
}
