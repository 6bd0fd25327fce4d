// Archives walferry-archive did not write: no `walferry.identity`, but WAL files, as a site that
// switches from `cp` has, or a copy made by other means. walferry-restore restores from them,
// checking each file against its name and, where a data directory is known (the working directory,
// or the one `%p` lies in for pg_rewind), its system identifier; an empty directory without a record
// is still refused (it is what an unmounted share looks like). And pg_rewind --restore-target-wal,
// whose `%p` is an absolute path and whose working directory is not a data directory, on real
// clusters.
//
// Like RestoreCLITests' scenes, except that the archive has no identity record.

import Foundation
import Testing
import TestSupport

struct ForeignArchiveTests {
    /// A scene without identity record whose data directory is a data directory of `systemIdentifier`.
    static func scene(systemIdentifier: UInt64 = testSystemIdentifier) throws -> RestoreScene {
        let scene = try RestoreScene(identity: false)
        try writeFile(scene.data + "/PG_VERSION", Array("15\n".utf8))
        _ = try scene.folder.makeDirectory("data/global")
        try writeFile(scene.data + "/global/pg_control", withUnsafeBytes(of: systemIdentifier.littleEndian) { Array($0) } + [UInt8](repeating: 0, count: 248))
        return scene
    }

    @Test(arguments: ["--pitr", "--standby"], [false, true])
    func aCpArchiveIsRestoredFrom(_ mode: String, compressed: Bool) throws {
        let scene = try Self.scene()
        let bytes = try scene.archiveSegment(2, compressed: compressed)
        let restored = try scene.restore([mode, scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"])
        #expect(restored.status == 0, "\(restored)")
        #expect(restored.stderr == "")
        #expect(sameBytes(try scene.read(scene.recoveryXLOG), bytes))

        // A miss is a clean miss: exit 1 in both modes, which ends a targeted recovery where the
        // archive ends, as it should.
        let missing = try scene.restore([mode, scene.source(WAL.name(3)), "pg_wal/RECOVERYXLOG"])
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderrLines == ["walferry-restore: WAL file \"\(WAL.name(3))\" not found in archive \"\(scene.archive)\""])
    }

    @Test func anotherClustersSegmentIsRefusedWhereTheDataDirectoryIsKnown() throws {
        let scene = try Self.scene(systemIdentifier: 42)
        try scene.archiveSegment(2)
        let refused = try scene.restore(["--pitr", scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"])
        #expect(refused.status == 202, "\(refused)")
        #expect(refused.stderrLines == [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" (system identifier \(testSystemIdentifier), PostgreSQL 15, 1 MB segments) does not belong to this data directory (system identifier 42)",
            "walferry-restore: detail: Targeted recovery (--pitr): exit status 202, so that the server stops instead of ending recovery early.",
            "walferry-restore: hint: Is restore_command pointing at another cluster's archive?",
        ])
        #expect(try scene.pgWALContents() == [])
    }

    @Test func aDamagedSegmentIsRefusedWithoutARecordToo() throws {
        let scene = try Self.scene()
        try scene.archiveSegment(2, bytes: WAL.segment(3))  // segment 3's bytes under segment 2's name
        let refused = try scene.restore(["--pitr", scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"])
        #expect(refused.status == 202, "\(refused)")
        #expect(refused.stderrLines.first == "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": page address 0/300000 in the header, but the file name says 0/200000")
    }

    /// pg_rewind's call: `%p` is `<data directory>/pg_wal/%f` as an absolute path, the working directory
    /// is anything, and there is no signal file: a targeted recovery's rules.
    @Test func pgRewindsCallIsServed() throws {
        let scene = try Self.scene()
        let bytes = try scene.archiveSegment(2)
        let destination = scene.pgWAL + "/" + WAL.name(2)
        let restored = try runTool("walferry-restore", [scene.source(WAL.name(2)), destination], workingDirectory: scene.folder.path)
        #expect(restored.status == 0, "\(restored)")
        #expect(sameBytes(try scene.read(destination), bytes))
        #expect(try scene.pgWALContents() == [WAL.name(2)])

        // The data directory %p lies in is known: another cluster's segment is refused.
        let foreign = try Self.scene(systemIdentifier: 42)
        try foreign.archiveSegment(2)
        let refused = try runTool("walferry-restore", [foreign.source(WAL.name(2)), foreign.pgWAL + "/" + WAL.name(2)],
                                  workingDirectory: foreign.folder.path)
        #expect(refused.status == 202, "\(refused)")
        #expect(refused.stderrLines.last == "walferry-restore: hint: Is restore_command pointing at another cluster's archive?")
        #expect(try foreign.pgWALContents() == [])
    }

    /// pg_rewind --restore-target-wal on real clusters: the old primary's WAL since the divergence is
    /// only in a `cp` archive; pg_rewind fetches it through walferry-restore, and the rewound server
    /// follows the new primary.
    @Test func pgRewindRestoresTheTargetsWALThroughWalferry() throws {
        let installation = try PostgresInstallation.system()
        let work = try TemporaryDirectory(prefix: "walferry-rewind")
        let archive = try work.makeDirectory("archive", mode: 0o700)
        try handToPostgresUser(archive)
        let primary = try PostgresCluster(installation: installation, name: "old-primary", initdbArguments: ["--wal-segsize=1"],
                                          settings: ["archive_mode": "on", "archive_command": "'cp %p \(archive)/%f'",
                                                     "wal_keep_size": "0", "max_wal_size": "'32MB'"])
        try primary.start()
        try primary.sql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)")
        let standby = try PostgresCluster(baseBackupOf: primary, name: "new-primary")
        try standby.start()
        try standby.promote()

        // The old primary goes on alone: its WAL since the divergence is what pg_rewind must read.
        try primary.sql("INSERT INTO t SELECT generate_series(101, 200)")
        for _ in 0..<4 {
            try primary.sql("INSERT INTO t SELECT generate_series(1, 1000); SELECT pg_switch_wal()")
        }
        try primary.sql("CHECKPOINT")
        let last = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("the old primary archived \(last)", timeout: 60) { entryExists(archive + "/" + last) }
        try primary.stop()
        // Only the archive has the segments before `last` now (the archiver takes them in order).
        let oldPrimaryWAL = primary.dataDirectory + "/pg_wal"
        for name in try listDirectory(oldPrimaryWAL) where name.count == 24 && name < last {
            try FileManager.default.removeItem(atPath: oldPrimaryWAL + "/" + name)
        }
        try primary.appendSettings(["restore_command": "'\(walferryTool("walferry-restore")) \(archive)/%f %p'"])

        let rewind = try runAsPostgresUser(installation.tool("pg_rewind"),
                                           ["-D", primary.dataDirectory, "--restore-target-wal", "--no-sync",
                                            "--source-server=host=\(standby.socketDirectory) port=\(standby.port) user=postgres dbname=postgres"],
                                           workingDirectory: work.path)
        #expect(rewind.status == 0, "\(rewind)")

        // The rewound server follows the new primary and has its rows, not its own lost ones. (pg_rewind
        // copied the new primary's postgresql.conf: its own socket folder goes back in.)
        try writeFile(primary.dataDirectory + "/standby.signal", [])
        try handToPostgresUser(primary.dataDirectory + "/standby.signal", recursive: false)
        try primary.appendCopySettings(["primary_conninfo": "'host=\(standby.socketDirectory) port=\(standby.port) user=postgres'"])
        try standby.sql("INSERT INTO t VALUES (-1)")
        try primary.start()
        try waitUntil("the rewound server replays the new primary's row", timeout: 60) {
            try primary.sql("SELECT count(*) FROM t WHERE id = -1") == "1"
        }
        #expect(try primary.sql("SELECT count(*) FROM t") == standby.sql("SELECT count(*) FROM t"))
        #expect(try primary.sql("SELECT count(*) FROM t") == "101")
    }
}
