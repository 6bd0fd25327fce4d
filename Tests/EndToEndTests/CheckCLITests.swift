// walferry-check's command line without servers: usage errors and no input are unknown (3), an
// archive that cannot be read is critical (2), an empty one too, and --textfile writes the
// Prometheus text atomically, or says why it could not, one line.

import Foundation
import Testing
import TestSupport

@Suite struct CheckCLITests {
    @Test func usageErrorsAndNoInputAreUnknown() throws {
        let cases: [([String], String)] = [
            ([], "walferry-check: error: nothing to check: give -d, -A, -B or -s"),
            (["-A", "/tmp", "--wait", "5 min"], "walferry-check: error: invalid duration for --wait: \"5 min\" (use 90, 90s, 10min, 2h or 1d)"),
            (["-A", "/tmp", "--lag-warning", "64mb"], "walferry-check: error: invalid size for --lag-warning: \"64mb\" (use 1048576, 512kB, 64MB or 1GB)"),
            (["-A", "/tmp", "--from", "00000001.history"],
             "walferry-check: error: invalid --from \"00000001.history\": expected a WAL segment name such as 000000010000000000000003"),
            (["-A", "/tmp", "--switch"], "walferry-check: error: --switch needs the primary (-d)"),
            (["-A", "/tmp", "--format", "xml"], "walferry-check: error: the value 'xml' is invalid for '--format <FORMAT>'. Please provide one of 'human', 'nagios', 'json' or 'prometheus'."),
        ]
        for (arguments, message) in cases {
            let outcome = try runTool("walferry-check", arguments)
            #expect(outcome.status == 3 && outcome.stdout == "", "\(arguments): \(outcome)")
            #expect(outcome.stderrLines == [message, "walferry-check: hint: Try \"walferry-check --help\" for more information."],
                    "\(arguments): \(outcome.stderr)")
        }
    }

    @Test func aMissingOrEmptyArchiveIsCriticalInOneLine() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-check-cli")
        let missing = try runTool("walferry-check", ["-A", folder.join("nope"), "--format", "nagios"])
        #expect(missing.status == 2 && missing.stderr == "", "\(missing)")
        #expect(missing.stdoutLines.first == "WALFERRY CRITICAL - archive.identity[\(folder.join("nope"))]: could not read archive directory \"\(folder.join("nope"))\": No such file or directory")
        let empty = try folder.makeDirectory("archive")
        let nothing = try runTool("walferry-check", ["-A", empty])
        #expect(nothing.status == 2, "\(nothing)")
        #expect(nothing.stdoutLines.contains { $0.hasPrefix("critical archive.continuity[\(empty)]") && $0.hasSuffix("archive \"\(empty)\" holds no WAL segment") },
                "\(nothing.stdout)")
        #expect(nothing.stdoutLines.last == "status: critical (2 critical, 1 ok, 15 skipped)", "\(nothing.stdout)")
        #expect(try listDirectory(empty) == [], "walferry-check wrote into the archive")
    }

    @Test func textfileIsWrittenAtomicallyOrTheRunSaysWhyNot() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-check-cli")
        let archive = try folder.makeDirectory("archive")
        let collector = try folder.makeDirectory("collector")
        try writeFile(collector + "/walferry.prom", Array("stale\n".utf8))
        let outcome = try runTool("walferry-check", ["-A", archive, "--format", "json", "--textfile", collector + "/walferry.prom"])
        #expect(outcome.status == 2 && outcome.stdout.hasPrefix("{\"status\": \"critical\""), "\(outcome)")
        #expect(try listDirectory(collector) == ["walferry.prom"], "no temporary file is left")
        let text = try String(contentsOfFile: collector + "/walferry.prom", encoding: .utf8)
        let samples = try parsePrometheusText(text)
        #expect(samples.contains("walferry_status{} 2") && samples.contains("walferry_check_status{archive=\"\(archive)\",check=\"archive.continuity\"} 2"),
                "\(samples)")
        // A directory that does not exist: one line, and the run's own status stands when worse.
        let nowhere = try runTool("walferry-check", ["-A", archive, "--textfile", folder.join("none/walferry.prom")])
        #expect(nowhere.status == 2, "\(nowhere)")
        #expect(nowhere.stderrLines == ["walferry-check: error: could not open directory \"\(folder.join("none"))\": No such file or directory"], "\(nowhere.stderr)")
    }

    /// archive.readers: walferry-cleanup's registered readers, judged against the expiry as the
    /// cleanups judge them; walferry-check only reads them.
    @Test func registeredReadersAreJudgedAgainstTheirExpiry() throws {
        let folder = try TemporaryDirectory(prefix: "walferry-check-cli")
        let archive = try folder.makeDirectory("archive")
        try writeFile(archive + "/walferry.identity", Array(identityRecordText(segmentSize: 16 << 20).utf8))
        for number in 1...3 { try writeFile(archive + "/00000001000000000000000\(number)", []) }
        func readersLine(_ arguments: [String] = []) throws -> (Int32, String) {
            let outcome = try runTool("walferry-check", ["-A", archive, "--only", "archive.readers", "--format", "nagios"] + arguments)
            return (outcome.status, outcome.stdoutLines.first { $0.hasPrefix("ok archive.readers") || $0.hasPrefix("warning archive.readers") || $0.hasPrefix("critical archive.readers") } ?? outcome.stdout)
        }
        #expect(try readersLine() == (0, "ok archive.readers[\(archive)]: no registered readers"))

        let register = try runTool("walferry-cleanup", ["--register", "standby-a", archive, "000000010000000000000002"])
        #expect(register.status == 0, "\(register)")
        var (status, line) = try readersLine()
        #expect(status == 0 && line.hasPrefix("ok archive.readers[\(archive)]: registered readers: 1, all reporting"), "\(line)")

        // Four days silent: stale against the default week, expired against 3 days.
        let record = archive + "/walferry.readers/standby-a"
        let old = Int(Date().timeIntervalSince1970) - 4 * 86_400 - 1_800
        let text = String(decoding: try readFile(record), as: UTF8.self).split(separator: "\n").map { $0.hasPrefix("reported at: ") ? "reported at: \(old)" : String($0) }
        try writeFile(record, Array((text.joined(separator: "\n") + "\n").utf8))
        (status, line) = try readersLine()
        #expect(status == 1, "\(line)")
        #expect(line == "warning archive.readers[\(archive)]: 1 of 1 registered readers silent for more than half the expiry of 7d: \"standby-a\" (4d, at 000000010000000000000002)")
        (status, line) = try readersLine(["--reader-expiry", "72h"])
        #expect(status == 2, "\(line)")
        #expect(line == "critical archive.readers[\(archive)]: 1 of 1 registered readers past the expiry of 3d, their WAL no longer kept: \"standby-a\" (4d, at 000000010000000000000002)")

        try writeFile(archive + "/walferry.readers/standby-b", Array("walferry archive reader 1\n".utf8))
        (status, line) = try readersLine()
        #expect(status == 2, "\(line)")
        #expect(line == "critical archive.readers[\(archive)]: invalid reader file \"\(archive)/walferry.readers/standby-b\"")
        #expect(try listDirectory(archive + "/walferry.readers") == [".lock", "standby-a", "standby-b"], "walferry-check wrote into the archive")
    }
}
