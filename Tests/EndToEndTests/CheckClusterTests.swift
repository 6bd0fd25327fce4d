// walferry-check against the classic setup (TestSupport/CheckSupport.swift: a primary archiving
// through walferry-archive, a walferry-backup, a streaming standby with the archive as fallback and an
// archive-only standby): every check ok, then one breakage at a time, each reported by the right
// check in all four formats with the documented exit status. The Prometheus text is read by
// prometheus_client's parser, the Nagios line checked against the plugin guidelines' grammar, the
// JSON read by Foundation's parser.

import Foundation
import Testing
import TestSupport

/// What one run of walferry-check said, in every format.
struct CheckRun {
    let status: Int32
    /// The checks that are neither ok nor skipped: "name" or "name@standby label" -> status.
    let problems: [String: String]
    let json: [String: Any]
    let human: String
    let nagios: String
    let prometheus: [String]
}

/// Runs walferry-check with `arguments` in each format and checks that the formats agree with each
/// other and with the exit status; returns what the JSON said.
func runCheckInEveryFormat(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CheckRun {
    let json = try runTool("walferry-check", arguments + ["--format", "json"])
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json)",
                              sourceLocation: sourceLocation)
    let checks = try #require(object["checks"] as? [[String: Any]], sourceLocation: sourceLocation)
    var problems: [String: String] = [:]
    for check in checks {
        let name = check["name"] as? String ?? "?", status = check["status"] as? String ?? "?"
        guard status != "ok" && status != "skipped" else { continue }
        let standby = (check["labels"] as? [String: String])?["standby"]
        problems[name + (standby.map { "@" + $0 } ?? "")] = status
    }
    let statusWords = ["ok", "warning", "critical", "unknown"]
    #expect(object["status"] as? String == statusWords[Int(json.status)], "\(json.stdout)", sourceLocation: sourceLocation)
    #expect(json.stderr == "", "\(json)", sourceLocation: sourceLocation)

    let human = try runTool("walferry-check", arguments)
    let nagios = try runTool("walferry-check", arguments + ["--format", "nagios"])
    let prometheus = try runTool("walferry-check", arguments + ["--format", "prometheus"])
    for outcome in [human, nagios, prometheus] {
        #expect(outcome.status == json.status, "the formats disagree: json \(json.status), \(outcome)", sourceLocation: sourceLocation)
    }
    // human: a line per problem, "status   name...".
    for (key, status) in problems {
        let name = key.split(separator: "@").first.map(String.init) ?? key
        #expect(human.stdoutLines.contains { $0.hasPrefix(status) && $0.contains(" " + name) }, "\(key) \(status) not in:\n\(human.stdout)",
                sourceLocation: sourceLocation)
    }
    #expect(human.stdoutLines.last?.hasPrefix("status: \(statusWords[Int(json.status)])") == true, "\(human.stdout)", sourceLocation: sourceLocation)
    // nagios: the grammar, the status word, every problem named on the status line.
    #expect(nagiosGrammarProblem(nagios.stdout) == nil, "\(nagiosGrammarProblem(nagios.stdout) ?? "")", sourceLocation: sourceLocation)
    let first = nagios.stdoutLines.first ?? ""
    #expect(first.hasPrefix("WALFERRY \(statusWords[Int(json.status)].uppercased()) - "), "\(first)", sourceLocation: sourceLocation)
    for key in problems.keys {
        #expect(first.contains(key.split(separator: "@").first.map(String.init) ?? key), "\(key) not on the status line: \(first)",
                sourceLocation: sourceLocation)
    }
    // prometheus: parsed by prometheus_client; the run's status and each problem's.
    let samples = try parsePrometheusText(prometheus.stdout)
    #expect(samples.contains("walferry_status{} \(json.status)"), "\(samples)", sourceLocation: sourceLocation)
    let codes = ["warning": 1, "critical": 2, "unknown": 3]
    for (key, status) in problems {
        let parts = key.split(separator: "@", maxSplits: 1).map(String.init)
        let found = samples.contains { sample in
            sample.hasPrefix("walferry_check_status{") && sample.contains("check=\"\(parts[0])\"")
                && (parts.count == 1 || sample.contains("standby=\"\(parts[1])\"")) && sample.hasSuffix(" \(codes[status] ?? -1)")
        }
        #expect(found, "\(key) \(status) not in the Prometheus samples: \(samples)", sourceLocation: sourceLocation)
    }
    return CheckRun(status: json.status, problems: problems, json: object, human: human.stdout, nagios: nagios.stdout, prometheus: samples)
}

/// The label walferry-check gives a standby (host:port).
func standbyLabel(_ cluster: PostgresCluster) -> String { "\(cluster.socketDirectory):\(cluster.port)" }

@Suite(.serialized) struct CheckClusterTests {
    @Test func allOkThenEachBreakageIsReportedByTheRightCheckInEveryFormat() throws {
        let scene = try ReplicationScene()
        let arguments = scene.checkArguments

        // All ok, --switch included: the archive-only standby is waited for too.
        let ok = try runCheckInEveryFormat(arguments + ["--switch", "--deep"])
        #expect(ok.status == 0 && ok.problems.isEmpty, "\(ok.problems)\n\(ok.human)")
        let smoke = ok.prometheus.filter { $0.hasPrefix("walferry_standby_smoke_delay_seconds{") }
        #expect(smoke.count == 2, "both standbys replayed the smoke test's message: \(ok.prometheus)")
        #expect(ok.prometheus.contains { $0.hasPrefix("walferry_switch_archive_delay_seconds{check=\"primary.switch\"}") })
        #expect(ok.human.contains("archive-only (no primary_conninfo)"), "\(ok.human)")
        // Without --switch the archive-only standby is not waited for, and not failed.
        let quick = try runCheckInEveryFormat(arguments)
        #expect(quick.status == 0 && quick.problems.isEmpty, "\(quick.problems)\n\(quick.human)")
        #expect(quick.human.contains("archive-only: not waited for without --switch"), "\(quick.human)")

        // 1. An archive_command that fails (it still names walferry-archive and the archive).
        try scene.primary.sql("ALTER SYSTEM SET archive_command = '\(postgresReachableToolDirectory)/walferry-archive %p \(scene.archive)/no-such-directory/%f.bz2'")
        try scene.primary.sql("SELECT pg_reload_conf()")
        usleep(300_000)
        try scene.switchSegment()
        try waitUntil("archiving fails", timeout: 60) {
            try scene.primary.sql("SELECT coalesce(last_failed_time > coalesce(last_archived_time, 'epoch'), false) FROM pg_stat_archiver") == "t"
        }
        let failing = try runCheckInEveryFormat(arguments)
        #expect(failing.status == 2 && failing.problems == ["primary.archiver": "critical"], "\(failing.problems)\n\(failing.human)")
        try scene.primary.sql("ALTER SYSTEM RESET archive_command")
        try scene.primary.sql("SELECT pg_reload_conf()")
        try scene.waitUntilArchived(try scene.switchSegment())

        // 2. A segment removed from the middle of the archive (after the backup's range).
        let segments = try scene.archivedSegments()
        let middle = segments[segments.count - 3]
        let aside = scene.folder.join(middle)
        try FileManager.default.moveItem(atPath: scene.archive + "/" + middle, toPath: aside)
        let gap = try runCheckInEveryFormat(arguments)
        #expect(gap.status == 2 && gap.problems == ["archive.continuity": "critical"], "\(gap.problems)\n\(gap.human)")
        #expect(gap.human.contains("1 of ") && gap.human.contains("segments missing: \(middle.dropLast(4))"), "\(gap.human)")
        try FileManager.default.moveItem(atPath: aside, toPath: scene.archive + "/" + middle)

        // 3. A corrupt .bz2: only --deep reads it.
        let damaged = scene.archive + "/" + segments[segments.count - 2]
        let original = try Data(contentsOf: URL(fileURLWithPath: damaged))
        var corrupt = original
        corrupt[corrupt.count / 2] ^= 0x55
        try corrupt.write(to: URL(fileURLWithPath: damaged))
        let shallow = try runCheckInEveryFormat(arguments)
        #expect(shallow.status == 0 && shallow.problems.isEmpty, "\(shallow.problems)\n\(shallow.human)")
        let deep = try runCheckInEveryFormat(arguments + ["--deep"])
        #expect(deep.status == 2 && deep.problems == ["archive.deep": "critical"], "\(deep.problems)\n\(deep.human)")
        #expect(deep.human.contains("could not decompress file \"\(damaged)\""), "\(deep.human)")
        try original.write(to: URL(fileURLWithPath: damaged))
        // The same in the newest backup's tarball: only --deep reads it, against the manifest.
        let tarball = try scene.backupDirectory() + "/base.tar.bz2"
        let tarBytes = try Data(contentsOf: URL(fileURLWithPath: tarball))
        var damagedTar = tarBytes
        damagedTar[damagedTar.count / 2] ^= 0x55
        try damagedTar.write(to: URL(fileURLWithPath: tarball))
        let deepBackup = try runCheckInEveryFormat(arguments + ["--deep"])
        #expect(deepBackup.status == 2 && deepBackup.problems == ["backups.deep": "critical"], "\(deepBackup.problems)\n\(deepBackup.human)")
        // Caught by the bzip2 block CRC, or by the manifest's checksum when the damaged bytes reach the
        // verifier first: either way named.
        #expect(deepBackup.human.contains("could not decompress file \"\(tarball)\"") || deepBackup.human.contains("checksum mismatch for file"),
                "\(deepBackup.human)")
        try tarBytes.write(to: URL(fileURLWithPath: tarball))

        // 4. Another cluster's identity record.
        let identity = scene.archive + "/walferry.identity"
        let record = try String(contentsOfFile: identity, encoding: .utf8)
        try "walferry archive identity 1\nsystem identifier: 1234567890\nwal segment size: 16777216\npostgresql version: 15\n"
            .write(toFile: identity, atomically: false, encoding: .utf8)
        let foreign = try runCheckInEveryFormat(arguments)
        #expect(foreign.status == 2 && foreign.problems == ["archive.identity": "critical"], "\(foreign.problems)\n\(foreign.human)")
        #expect(foreign.human.contains("belongs to another cluster (system identifier 1234567890"), "\(foreign.human)")
        try record.write(toFile: identity, atomically: false, encoding: .utf8)

        // 5. A backup older than the threshold (its directory renamed to an old start time).
        let backup = try scene.backupDirectory()
        let old = scene.backups + "/20200101T000000Z"
        try FileManager.default.moveItem(atPath: backup, toPath: old)
        let stale = try runCheckInEveryFormat(arguments)
        #expect(stale.status == 2 && stale.problems == ["backups.newest": "critical"], "\(stale.problems)\n\(stale.human)")
        try FileManager.default.moveItem(atPath: old, toPath: backup)

        // 6. A backup whose WAL is missing. The first backup's WAL is in its tarball too
        // (--wal-archive): without its first segment in the archive, only continuity (which starts at
        // that backup) misses it. A backup taken without --wal-archive needs the archive's.
        func firstSegment(_ backup: String) throws -> String {
            let manifest = try String(contentsOfFile: backup + "/backup_manifest", encoding: .utf8)
            let range = try #require(manifest.split(separator: "\n").first { $0.hasPrefix("{ \"Timeline\"") })
            let startLSN = try #require(range.split(separator: "\"").dropFirst(5).first)
            return try scene.primary.sql("SELECT pg_walfile_name('\(startLSN)'::pg_lsn + 1)") + ".bz2"
        }
        let needed = try firstSegment(backup)
        try FileManager.default.moveItem(atPath: scene.archive + "/" + needed, toPath: scene.folder.join(needed))
        let inTarball = try runCheckInEveryFormat(arguments)
        #expect(inTarball.status == 2 && inTarball.problems == ["archive.continuity": "critical"], "\(inTarball.problems)\n\(inTarball.human)")
        #expect(inTarball.human.contains("the WAL of 1 backup is there"), "\(inTarball.human)")
        try FileManager.default.moveItem(atPath: scene.folder.join(needed), toPath: scene.archive + "/" + needed)
        let second = try runTool("walferry-backup", ["-d", ReplicationScene.conninfo(scene.primary), "-D", scene.primary.dataDirectory,
                                                     "-o", scene.backups, "-c", "fast"])
        #expect(second.status == 0, "\(second)")
        let newest = try #require(try listDirectory(scene.backups).filter { !$0.hasPrefix(".") }.sorted().last)
        let secondNeeds = try firstSegment(scene.backups + "/" + newest)
        try FileManager.default.moveItem(atPath: scene.archive + "/" + secondNeeds, toPath: scene.folder.join(secondNeeds))
        let noWAL = try runCheckInEveryFormat(arguments)
        #expect(noWAL.status == 2 && noWAL.problems == ["backups.wal": "critical", "archive.continuity": "critical"],
                "\(noWAL.problems)\n\(noWAL.human)")
        #expect(noWAL.human.contains("1 segments neither in the archive nor in the tarball: \(newest) needs \(secondNeeds.dropLast(4))"), "\(noWAL.human)")
        try FileManager.default.moveItem(atPath: scene.folder.join(secondNeeds), toPath: scene.archive + "/" + secondNeeds)

        // 7. A standby whose replay is paused: the lag grows (warning) and the smoke test times out.
        try scene.streaming.sql("SELECT pg_wal_replay_pause()")
        try scene.primary.sql("INSERT INTO t SELECT generate_series(1, 50000)")
        let paused = standbyLabel(scene.streaming), archiveOnly = standbyLabel(scene.archiveOnly)
        let lagging = try runCheckInEveryFormat(arguments + ["--lag-warning", "1MB", "--wait", "2s"])
        // The archive-only standby lags too, by the WAL not archived yet: that is what it is.
        #expect(lagging.status == 2 && lagging.problems == ["standby.recovery@\(paused)": "warning", "standby.lag@\(paused)": "warning",
                                                             "standby.smoke@\(paused)": "critical", "standby.lag@\(archiveOnly)": "warning"],
                "\(lagging.problems)\n\(lagging.human)")
        // The lag alone is a warning.
        let lagOnly = try runCheckInEveryFormat(arguments + ["--lag-warning", "1MB", "--skip", "standby.smoke"])
        #expect(lagOnly.status == 1, "\(lagOnly.problems)\n\(lagOnly.human)")
        #expect(lagOnly.prometheus.contains { $0.hasPrefix("walferry_standby_replay_lag_bytes{") && $0.contains(paused) && !$0.hasSuffix(" 0") })
        try scene.streaming.sql("SELECT pg_wal_replay_resume()")

        // 8. A standby stopped.
        try scene.streaming.stop()
        let stopped = try runCheckInEveryFormat(arguments)
        #expect(stopped.status == 2 && stopped.problems == ["standby.recovery@\(paused)": "critical"], "\(stopped.problems)\n\(stopped.human)")
        #expect(stopped.human.contains("could not connect to the standby"), "\(stopped.human)")

        // 9. The primary stopped: critical, never a crash.
        try scene.primary.stop()
        let down = try runTool("walferry-check", ["-d", ReplicationScene.conninfo(scene.primary), "--format", "nagios"])
        #expect(down.status == 2 && down.stdoutLines.first?.hasPrefix("WALFERRY CRITICAL - primary.connection: could not connect to the primary: ") == true,
                "\(down)")
        // And the archive and backups were not written to by any of these runs: only the test's own changes.
        #expect(!(try listDirectory(scene.archive)).contains { $0.hasPrefix(".") && $0.hasSuffix(".walferry-tmp") })
    }
}
