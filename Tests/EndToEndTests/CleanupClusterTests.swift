// walferry-cleanup where it is meant to run: as a standby's archive_cleanup_command, called by the
// server at each restartpoint with %r. Like PostgreSQL's src/test/recovery/t/002_archiving.pl: a
// primary archives, a standby made from a base backup replays only from the archive, a restartpoint
// runs the cleanup, and the archive is checked file by file.

import Foundation
import Testing
import TestSupport

@Suite struct CleanupClusterTests {
    @Test func archiveCleanupCommandOnAStandby() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-archive")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)

        let primary = try PostgresCluster(installation: pg, name: "primary", settings: [
            "archive_mode": "on",
            // A guarded cp fills the archive: this test is about the cleanup alone (ArchiveClusterTests and
            // RestoreClusterTests run walferry-archive under a server).
            "archive_command": "'test ! -f \(archive)/%f && cp %p \(archive)/%f'",
        ])
        try primary.start()
        defer { try? primary.stop() }
        try primary.sql("CREATE TABLE t (id int)")
        try primary.sql("INSERT INTO t SELECT generate_series(1, 1000)")

        let standby = try PostgresCluster(baseBackupOf: primary, settings: [
            "restore_command": "'cp \(archive)/%f %p'",
            "archive_cleanup_command": "'\(postgresReachableToolDirectory)/walferry-cleanup -d \(archive) %r'",
            "hot_standby": "on",
        ])
        try standby.start()
        defer { try? standby.stop() }

        // Several segments, then a checkpoint that the standby can turn into a restartpoint, then more WAL
        // so that the checkpoint record is in an archived segment.
        // (One statement per call: psql -c sends several as one transaction, whose commit would land after
        // the switch, in a segment that is not archived yet.)
        for _ in 1...4 {
            try primary.sql("INSERT INTO t SELECT generate_series(1, 100)")
            try primary.sql("SELECT pg_switch_wal()")
        }
        try primary.sql("CHECKPOINT")
        try primary.sql("INSERT INTO t SELECT generate_series(1, 7)")
        try primary.sql("SELECT pg_switch_wal()")
        let rows = try primary.sql("SELECT count(*) FROM t")
        #expect(rows == "1407")
        do {
            try waitUntil("the standby has replayed every row", timeout: 120) {
                (try? standby.sql("SELECT count(*) FROM t")) == rows
            }
        } catch {
            Issue.record("\(error)\narchive: \(try listDirectory(archive))\nstandby log:\n\(standby.serverLog())")
            return
        }
        let before = try listDirectory(archive)

        try standby.sql("CHECKPOINT")  // a restartpoint: the server runs archive_cleanup_command with %r
        var keepLine: Substring = ""
        try waitUntil("the server log shows walferry-cleanup's cut-off", timeout: 60) {
            keepLine = standby.serverLog().split(separator: "\n").last { $0.contains("walferry-cleanup: keeping WAL file") } ?? ""
            return !keepLine.isEmpty
        }
        // walferry-cleanup: keeping WAL file "/…/archive/00000001000000000000000A" and later
        let cutoff = try #require(keepLine.split(separator: "/").last?.prefix(24)).description
        #expect(keepLine.hasSuffix("\(archive)/\(cutoff)\" and later"))

        let after = try listDirectory(archive)
        let segments = { (names: [String]) in names.filter { $0.count == 24 } }
        // Everything older than the cut-off (ignoring the timeline) is gone, everything from it on is kept,
        // and the backup history file, which only -b removes, is still there.
        #expect(segments(after).allSatisfy { $0.dropFirst(8) >= cutoff.dropFirst(8) }, "\(after)")
        #expect(segments(after) == segments(before).filter { $0.dropFirst(8) >= cutoff.dropFirst(8) })
        #expect(segments(before).count > segments(after).count, "nothing was removed: \(before)")
        #expect(after.contains(cutoff))
        #expect(after.contains { $0.hasSuffix(".backup") })
        for removed in Set(segments(before)).subtracting(after) {
            #expect(standby.serverLog().contains("walferry-cleanup: removing file \"\(archive)/\(removed)\""))
        }
    }
}
