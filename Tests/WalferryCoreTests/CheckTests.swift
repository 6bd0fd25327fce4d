// walferry-check's pure parts: the four output formats (exact text, and read back by the real parsers:
// prometheus_client, the Nagios plugin grammar, Foundation's JSON), the worst-status rule, the
// thresholds and option values, Barman's failing-archiver rule, and continuity along a timeline
// history, with the split-brain check, on archives of empty files.

import Foundation
import Testing
import TestSupport
@testable import WalferryCore

struct CheckTests {
    static let report = CheckReport(checks: [
        CheckResult("primary.archiver", .ok, "12 archived, last 00000001000000000000000C 3 s ago",
                    figures: [CheckFigure("archiver_failed", 0, .count)]),
        CheckResult("archive.continuity", .critical, "1 of 9 segments missing: 000000010000000000000005",
                    hints: ["Take a new base backup now."],
                    figures: [CheckFigure("archive_missing_segments", 1, .count, critical: 0)], labels: [("archive", "/mnt/archive")]),
        CheckResult("standby.lag", .warning, "2 MB behind | \"quoted\"",
                    figures: [CheckFigure("standby_replay_lag", 2_097_152, .bytes, warning: 1_048_576, critical: 1_073_741_824),
                              CheckFigure("standby_replay_lag", 1.25, .seconds)],
                    labels: [("standby", "db2 'x'=\"y\"\\z\nw:5432")]),
        CheckResult("backups.deep", .skipped, "needs --deep"),
    ], finishedAt: 1_796_000_000)

    @Test func humanFormatIsOneLinePerCheckWithHintsAndASummary() {
        #expect(formatHuman(Self.report, colour: false) == """
            ok       primary.archiver                   12 archived, last 00000001000000000000000C 3 s ago
            critical archive.continuity[/mnt/archive]   1 of 9 segments missing: 000000010000000000000005
                     hint: Take a new base backup now.
            warning  standby.lag[db2 'x'="y"\\z w:5432]  2 MB behind | "quoted"
            skipped  backups.deep                       needs --deep
            status: critical (1 critical, 1 warning, 1 ok, 1 skipped)

            """)
        let coloured = formatHuman(Self.report, colour: true)
        #expect(coloured.contains("\u{1B}[31mcritical\u{1B}[0m archive.continuity"))
        #expect(coloured.contains("\u{1B}[32mok      \u{1B}[0m primary.archiver"))
    }

    @Test func nagiosFormatFollowsThePluginGrammar() {
        let text = formatNagios(Self.report)
        #expect(nagiosGrammarProblem(text) == nil, "\(nagiosGrammarProblem(text) ?? "")")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == #"WALFERRY CRITICAL - archive.continuity[/mnt/archive]: 1 of 9 segments missing: 000000010000000000000005; standby.lag[db2 'x'="y"\z w:5432]: 2 MB behind / "quoted" | archiver_failed=0 'archive_missing_segments[/mnt/archive]'=1;;0 'standby_replay_lag_bytes[db2 ''x''_"y"\z w:5432]'=2097152B;1048576;1073741824 'standby_replay_lag_seconds[db2 ''x''_"y"\z w:5432]'=1.25s"#, "\(lines[0])")
        // No newline may break the status line, and "|" appears once, before the perfdata.
        #expect(lines[0].filter { $0 == "|" }.count == 1, "\(lines[0])")
        #expect(lines.count == 5, "\(lines)")
        #expect(lines[1] == "ok primary.archiver: 12 archived, last 00000001000000000000000C 3 s ago")
        #expect(lines[4] == "skipped backups.deep: needs --deep")
        // A report without problems.
        let fine = CheckReport(checks: [CheckResult("archive.identity", .ok, "system identifier 1")], finishedAt: 0)
        #expect(formatNagios(fine) == "WALFERRY OK - 1 checks ok\nok archive.identity: system identifier 1\n")
        #expect(nagiosGrammarProblem(formatNagios(fine)) == nil)
    }

    @Test func nagiosGrammarRefusesWhatThePluginGuidelinesRefuse() {
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | a=1;2;3\n") == nil)
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | 'a b'=1.5s;;\n") == nil)
        #expect(nagiosGrammarProblem("WALFERRY FINE - text\n") != nil)
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | a b=1\n") != nil)
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | a=1parsecs\n") != nil)
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | a=\n") != nil)
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | a=1 'b c'=2 a=3\n")?.hasPrefix("a perfdata label is given twice: ") == true)
        #expect(nagiosGrammarProblem("WALFERRY OK - fine | a=1 'b c'=2 'a b'=3\n") == nil)
    }

    @Test func prometheusFormatIsReadByPrometheusClient() throws {
        let text = formatPrometheus(Self.report)
        let samples = try parsePrometheusText(text)
        #expect(samples == [
            "walferry_status{} 2",
            "walferry_check_timestamp_seconds{} 1796000000",
            "walferry_check_status{check=\"primary.archiver\"} 0",
            "walferry_check_status{archive=\"/mnt/archive\",check=\"archive.continuity\"} 2",
            "walferry_check_status{check=\"standby.lag\",standby=\"db2 'x'=\\\"y\\\"\\\\z\\nw:5432\"} 1",
            "walferry_archiver_failed{check=\"primary.archiver\"} 0",
            "walferry_archive_missing_segments{archive=\"/mnt/archive\",check=\"archive.continuity\"} 1",
            "walferry_standby_replay_lag_bytes{check=\"standby.lag\",standby=\"db2 'x'=\\\"y\\\"\\\\z\\nw:5432\"} 2097152",
            "walferry_standby_replay_lag_seconds{check=\"standby.lag\",standby=\"db2 'x'=\\\"y\\\"\\\\z\\nw:5432\"} 1.25",
        ], "\(samples)")
        #expect(text.contains(#"standby="db2 'x'=\"y\"\\z\nw:5432""#), "\(text)")
        #expect(text.hasPrefix("# HELP walferry_status The exit status of the run: 0 ok, 1 warning, 2 critical, 3 unknown.\n# TYPE walferry_status gauge\nwalferry_status 2\n"))
    }

    @Test func jsonFormatHasEveryCheckWithItsFigures() throws {
        let text = formatJSON(Self.report)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["status"] as? String == "critical" && object["exit_status"] as? Int == 2)
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.map { $0["name"] as? String } == ["primary.archiver", "archive.continuity", "standby.lag", "backups.deep"])
        #expect(checks.map { $0["status"] as? String } == ["ok", "critical", "warning", "skipped"])
        let lag = try #require(checks[2]["figures"] as? [String: Double])
        #expect(lag == ["standby_replay_lag_bytes": 2_097_152, "standby_replay_lag_seconds": 1.25])
        #expect((checks[2]["labels"] as? [String: String])?["standby"] == "db2 'x'=\"y\"\\z\nw:5432")
        #expect(checks[1]["hints"] as? [String] == ["Take a new base backup now."])
        #expect(checks[2]["message"] as? String == "2 MB behind | \"quoted\"")
    }

    @Test func theWorstStatusDecidesTheExitStatus() {
        func status(_ statuses: [CheckStatus]) -> CheckExitStatus {
            CheckReport(checks: statuses.map { CheckResult("x", $0, "") }, finishedAt: 0).exitStatus
        }
        #expect(status([.ok, .skipped]) == .ok)
        #expect(status([.ok, .warning]) == .warning)
        #expect(status([.warning, .unknown]) == .unknown)
        #expect(status([.unknown, .critical, .warning]) == .critical)
        #expect(status([.skipped]) == .unknown)
        #expect(status([]) == .unknown)
        #expect(CheckExitStatus.allCases.map(\.rawValue) == [0, 1, 2, 3])
    }

    @Test func thresholdsAndOptionValues() {
        let threshold = Threshold(warning: 10, critical: 20)
        #expect([5, 10, 11, 20, 21].map(threshold.judge) == [.ok, .ok, .warning, .warning, .critical])
        #expect(Threshold(warning: nil, critical: nil).judge(1e12) == .ok)
        #expect(parseDuration("90") == 90 && parseDuration("90s") == 90 && parseDuration("10min") == 600 && parseDuration("10m") == 600)
        #expect(parseDuration("2h") == 7200 && parseDuration("1.5d") == 129_600)
        #expect(parseDuration("-1") == nil && parseDuration("h") == nil && parseDuration("10 min") == nil && parseDuration("1w") == nil)
        #expect(parseSize("64MB") == 67_108_864 && parseSize("1GB") == 1_073_741_824 && parseSize("512kB") == 524_288 && parseSize("100") == 100)
        #expect(parseSize("64mb") == nil && parseSize("") == nil)
        #expect(describeDuration(0.0567) == "57 ms" && describeDuration(3.04) == "3 s" && describeDuration(125) == "2 min 5 s" && describeDuration(7500) == "2 h 5 min")
        #expect(describeBytes(0) == "0 bytes" && describeBytes(3_250_000) == "3.1 MB")
        #expect(formatNumber(2) == "2" && formatNumber(1.25) == "1.25" && formatNumber(1.0 / 3) == "0.333" && formatNumber(.nan) == "0")
    }

    @Test func aFailingArchiverByBarmansRule() {
        func stats(archived: String?, at archivedTime: Double?, failed: String?, at failedTime: Double?) -> ArchiverStatistics {
            ArchiverStatistics(archivedCount: 1, lastArchivedWAL: archived, lastArchivedTime: archivedTime, failedCount: 1,
                               lastFailedWAL: failed, lastFailedTime: failedTime)
        }
        #expect(!stats(archived: "000000010000000000000003", at: 100, failed: nil, at: nil).isFailing)
        #expect(!stats(archived: "000000010000000000000003", at: 100, failed: "000000010000000000000002", at: 90).isFailing)
        #expect(stats(archived: "000000010000000000000003", at: 100, failed: "000000010000000000000004", at: 110).isFailing)
        #expect(stats(archived: nil, at: nil, failed: "000000010000000000000001", at: 110).isFailing)
        // The history file of an older timeline, once archiving goes on on a newer one.
        #expect(!stats(archived: "000000030000000000000009", at: 100, failed: "00000002.history", at: 110).isFailing)
        #expect(stats(archived: "000000020000000000000009", at: 100, failed: "00000003.history", at: 110).isFailing)
        let check = primaryArchiverCheck(stats(archived: "000000010000000000000003", at: 100, failed: "000000010000000000000004", at: 110), now: 115)
        #expect(check.status == .critical)
        #expect(check.message == "archiving is failing: last failure on 000000010000000000000004 5 s ago, 1 failures; last success 000000010000000000000003")
        // An idle server: the last archived file is old, and that is fine.
        #expect(primaryArchiverCheck(stats(archived: "000000010000000000000003", at: 100, failed: nil, at: nil), now: 1e9).status == .ok)
    }

    @Test func archiveSettingsMustNameWalferryArchiveAndTheArchive() {
        let good = ArchiveSettings(archiveMode: "on", archiveCommand: "walferry-archive %p /mnt/archive/%f.bz2", archiveLibrary: "")
        #expect(primaryArchiveSettingsCheck(good, archive: "/mnt/archive").status == .ok)
        #expect(primaryArchiveSettingsCheck(good, archive: "/mnt/archive/").status == .ok)
        #expect(primaryArchiveSettingsCheck(good, archive: "/mnt/arch").status == .critical)
        #expect(primaryArchiveSettingsCheck(ArchiveSettings(archiveMode: "off", archiveCommand: "", archiveLibrary: ""), archive: nil).status == .critical)
        #expect(primaryArchiveSettingsCheck(ArchiveSettings(archiveMode: "on", archiveCommand: "cp %p /mnt/archive/%f", archiveLibrary: ""), archive: nil).status == .critical)
        #expect(primaryArchiveSettingsCheck(ArchiveSettings(archiveMode: "on", archiveCommand: nil, archiveLibrary: ""), archive: nil).status == .unknown)
        #expect(primaryArchiveSettingsCheck(ArchiveSettings(archiveMode: "on", archiveCommand: "", archiveLibrary: "basic_archive"), archive: nil).status == .critical)
    }

    static let size = WALSegmentSize.default

    static func name(_ timeline: UInt32, _ number: UInt64) -> String {
        WALFileName(timeline: timeline, segmentNumber: number, segmentSize: size).description
    }

    /// An archive of empty files with these names, and an identity record.
    static func archive(_ names: [String], history: [UInt32: String] = [:]) throws -> TemporaryDirectory {
        let folder = try TemporaryDirectory(prefix: "walferry-check-unit")
        for name in names { try writeFile(folder.join(name), []) }
        for (timeline, text) in history { try writeFile(folder.join(WALFileName.timelineHistory(timeline).description), Array(text.utf8)) }
        try writeFile(folder.join("walferry.identity"), Array(ArchiveIdentity(systemIdentifier: 42, segmentSize: size, postgresVersion: 15).text.utf8))
        return folder
    }

    @Test func continuityFindsLostAndDelayedSegments() {
        let segments: [UInt32: [UInt64: ArchiveListing.Forms]] = [1: [3: .plain, 4: .bzip2, 6: [.plain, .bzip2], 8: .plain]]
        let path = timelinePath(target: 1, history: [], segmentSize: Self.size)
        let outcome = checkContinuity(segments: segments, path: path, start: nil, ready: [Self.name(1, 7)], segmentSize: Self.size)
        #expect(outcome.first == 3 && outcome.last == 8)
        #expect(outcome.lost == [Self.name(1, 5)] && outcome.delayed == [Self.name(1, 7)])
        #expect(outcome.expected.map(\.forms) == [.plain, .bzip2, [], [.plain, .bzip2], [], .plain])
        // From a given start, and up to the primary's last archived segment.
        let later = checkContinuity(segments: segments, path: path, start: 1, archivedThrough: 9, ready: [], segmentSize: Self.size)
        #expect(later.lost == [1, 2, 5, 7, 9].map { Self.name(1, $0) })
    }

    @Test func continuityFollowsTheTimelineHistoryAcrossASwitch() throws {
        // Timeline 1 ended at 0/5000100 (in segment 5): segment 5 on, timeline 2 is read.
        let history = "1\t0/5000100\tno recovery target specified\n"
        let folder = try Self.archive([1, 2, 3, 4].map { Self.name(1, $0) } + [Self.name(1, 5) + ".partial"] + [5, 6, 7].map { Self.name(2, $0) },
                                      history: [2: history])
        var request = ArchiveCheckRequest(path: folder.path)
        request.primary = PrimaryFacts(systemIdentifier: 42, timeline: 2, segmentSize: Self.size, ready: [])
        let checks = runArchiveChecks(request).checks
        let continuity = try #require(checks.first { $0.name == "archive.continuity" })
        #expect(continuity.status == .ok, "\(continuity.message)")
        #expect(continuity.message == "7 segments, \(Self.name(1, 1)) to \(Self.name(2, 7)) across timelines 1, 2, none missing")
        #expect(checks.first { $0.name == "archive.timelines" }?.status == .ok)
        #expect(checks.first { $0.name == "archive.identity" }?.status == .ok)

        // Segment 5 only on the old timeline: the new timeline's copy is what recovery reads.
        try FileManager.default.removeItem(atPath: folder.join(Self.name(2, 5)))
        try writeFile(folder.join(Self.name(1, 5)), [])
        let missing = try #require(runArchiveChecks(request).checks.first { $0.name == "archive.continuity" })
        #expect(missing.status == .critical && missing.message == "1 of 7 segments missing: \(Self.name(2, 5))", "\(missing.message)")

        // Without the history file, no path can be followed.
        try FileManager.default.removeItem(atPath: folder.join("00000002.history"))
        let noHistory = try #require(runArchiveChecks(request).checks.first { $0.name == "archive.continuity" })
        #expect(noHistory.status == .critical && noHistory.message.hasSuffix("00000002.history\" is missing"), "\(noHistory.message)")
    }

    @Test func aTimelineNewerThanThePrimarysIsASplitBrain() throws {
        let folder = try Self.archive([Self.name(1, 1), Self.name(1, 2), Self.name(2, 2)], history: [2: "1\t0/2000000\tpromoted\n"])
        var request = ArchiveCheckRequest(path: folder.path)
        request.primary = PrimaryFacts(systemIdentifier: 42, timeline: 1, segmentSize: Self.size, ready: [])
        let timelines = try #require(runArchiveChecks(request).checks.first { $0.name == "archive.timelines" })
        #expect(timelines.status == .critical)
        #expect(timelines.message == "archive holds timeline 2, newer than the primary's timeline 1: another server was promoted and archives here (split brain)")
        // Another cluster's identity.
        request.primary?.systemIdentifier = 7
        let identity = try #require(runArchiveChecks(request).checks.first { $0.name == "archive.identity" })
        #expect(identity.status == .critical && identity.message.contains("belongs to another cluster (system identifier 42"), "\(identity.message)")
    }

    @Test func timelineHistoryEntriesAreParsedByTheServersRules() {
        let entries = try? parseTimelineHistory(Array("# comment\n1\t0/5000100\treason\n\n2\t1/A0\n".utf8), timeline: 3).get()
        #expect(entries == [TimelineHistoryEntry(parent: 1, switchpoint: 0x5000100), TimelineHistoryEntry(parent: 2, switchpoint: 0x1_0000_00A0)])
        #expect(timelineHistoryProblem(Array("2\t0/1\n1\t0/2\n".utf8), timeline: 3) == "line 2: timeline IDs must be in increasing sequence")
        let path = timelinePath(target: 3, history: entries ?? [], segmentSize: Self.size)
        #expect(path.map(\.timeline) == [1, 2, 3] && path.map(\.firstSegment) == [0, 5, 256])
    }
}
