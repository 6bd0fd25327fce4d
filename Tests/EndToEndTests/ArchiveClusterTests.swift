// walferry-archive as a real server's archive_command, under pgbench: every file the server reports
// as archived is in the archive, and identical (after decompression) to the server's own copy.

import Foundation
import Testing
import TestSupport

@Suite struct ArchiveClusterTests {
    @Test(arguments: ["%f", "%f.bz2"])
    func everyArchivedSegmentIsInTheArchiveAndIdentical(_ pattern: String) throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-archive")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let primary = try PostgresCluster(installation: pg, name: "primary", settings: [
            "archive_mode": "on",
            "archive_command": "'\(postgresReachableToolDirectory)/walferry-archive %p \(archive)/\(pattern)'",
            // Keep every segment in pg_wal, so that the archive can be compared with the server's own.
            "wal_keep_size": "'2GB'",
            "max_wal_size": "'2GB'",
        ])
        try primary.start()
        defer { try? primary.stop() }

        let pgbench = pg.tool("pgbench")
        let connection = ["-h", primary.socketDirectory, "-p", "\(primary.port)", "-U", "postgres", "postgres"]
        let initialise = try runProcess(pgbench, ["-i", "-s", "2", "-q"] + connection)
        #expect(initialise.status == 0, "\(initialise)")
        for _ in 0..<3 {
            let load = try runProcess(pgbench, ["-c", "2", "-j", "2", "-t", "300", "-n"] + connection)
            #expect(load.status == 0, "\(load)")
            try primary.sql("SELECT pg_switch_wal()")
        }
        let last = try primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try primary.sql("SELECT pg_switch_wal()")
        try waitUntil("the server has archived \(last)", timeout: 120) {
            let archived = try primary.sql("SELECT last_archived_wal FROM pg_stat_archiver")
            return archived >= last && archived.count == 24
        }
        #expect(try primary.sql("SELECT failed_count FROM pg_stat_archiver") == "0", "\(primary.serverLog())")

        // Every .done in archive_status is a file the server counts as archived.
        let status = primary.dataDirectory + "/pg_wal/archive_status"
        let done = try listDirectory(status).filter { $0.hasSuffix(".done") }.map { String($0.dropLast(5)) }
        let segments = done.filter { $0.count == 24 }
        #expect(segments.count >= 5, "\(done)")
        for name in done {
            let stored = archive + "/" + pattern.replacingOccurrences(of: "%f", with: name)
            #expect(entryExists(stored), "\(name) is marked archived but not in the archive")
            let contents = pattern.hasSuffix(".bz2")
                ? try runProcess("/bin/sh", ["-c", "bzip2 -dc '\(stored)'"]).stdoutBytes
                : try readFile(stored)
            #expect(sameBytes(contents, try readFile(primary.dataDirectory + "/pg_wal/" + name)), "\(name) differs from the server's copy")
        }
        #expect(try listDirectory(archive).filter { $0.hasPrefix(".") } == [], "temporary files left behind")
        #expect(entryExists(archive + "/walferry.identity"))
        #expect(try String(contentsOfFile: primary.dataDirectory + "/walferry.archives", encoding: .utf8) == archive + "\n")
        let controlIdentifier = try runProcess(pg.tool("pg_controldata"), [primary.dataDirectory]).stdout
            .split(separator: "\n").first { $0.hasPrefix("Database system identifier:") }?
            .split(separator: " ").last.map(String.init) ?? "?"
        #expect(try String(contentsOfFile: archive + "/walferry.identity", encoding: .utf8)
                == identityRecordText(systemIdentifier: try #require(UInt64(controlIdentifier)), segmentSize: 16 << 20))
    }
}
