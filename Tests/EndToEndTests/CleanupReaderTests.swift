// walferry-cleanup with several readers on one archive: registering, reporting, listing and forgetting
// readers; what a run keeps for the other readers and for kept backups; stale and expired readers;
// every bad input, with its exact message, exit status, and nothing removed; and cleanups racing a
// registration. The real standbys are in CleanupReaderClusterTests.

import Foundation
import Testing
import TestSupport

@Suite struct CleanupReaderTests {
    static let tool = "walferry-cleanup"

    /// "000000010000000000000009" for 9.
    static func segment(_ number: Int, timeline: Int = 1) -> String {
        String(format: "%08X%08X%08X", timeline, number / 256, number % 256)
    }

    /// An archive with an identity record (16 MB segments) and empty segments `numbers`.
    static func archive(_ numbers: ClosedRange<Int>, in folder: TemporaryDirectory, name: String = "archive",
                        systemIdentifier: UInt64 = testSystemIdentifier) throws -> String {
        let dir = try folder.makeDirectory(name)
        try writeFile(dir + "/walferry.identity", Array(identityRecordText(systemIdentifier: systemIdentifier, segmentSize: 16 << 20).utf8))
        for number in numbers { try writeFile(dir + "/" + segment(number), []) }
        return dir
    }

    /// The segment numbers left in `archive`.
    static func segments(_ archive: String) throws -> [Int] {
        try listDirectory(archive).filter { $0.count == 24 }.compactMap { name -> Int? in
            guard let high = Int(name.dropFirst(8).prefix(8), radix: 16), let low = Int(name.dropFirst(16), radix: 16) else { return nil }
            return high * 256 + low
        }.sorted()
    }

    /// A reader record written by hand, `age` seconds old.
    static func writeReader(_ name: String, at number: Int, age: Int, in archive: String,
                            systemIdentifier: UInt64 = testSystemIdentifier) throws {
        let now = Int(Date().timeIntervalSince1970)
        try FileManager.default.createDirectory(atPath: archive + "/walferry.readers", withIntermediateDirectories: true)
        try writeFile(archive + "/walferry.readers/" + name, Array("""
            walferry archive reader 1
            name: \(name)
            system identifier: \(systemIdentifier)
            oldest kept wal file: \(segment(number))
            reported at: \(now - age)

            """.utf8))
    }

    func run(_ arguments: [String]) throws -> ProcessOutcome { try runTool(Self.tool, arguments) }

    @Test func registerReportListAndForget() throws {
        let folder = try TemporaryDirectory()
        let archive = try Self.archive(1...20, in: folder)

        var outcome = try run(["--register", "standby-a", archive, Self.segment(5)])
        #expect(outcome.status == 0 && outcome.stdout == "" && outcome.stderr == "", "\(outcome)")
        outcome = try run(["--register", "standby-b", archive, Self.segment(8)])
        #expect(outcome.status == 0 && outcome.stderr == "", "\(outcome)")

        // standby-a reports 12: it may not remove what standby-b (at 8) needs.
        outcome = try run(["--reader", "standby-a", archive, Self.segment(12)])
        #expect(outcome.status == 0 && outcome.stdout == "" && outcome.stderr == "", "a reader's run is quiet: \(outcome)")
        #expect(try Self.segments(archive) == Array(8...20))

        // A run without --reader (a configuration that predates the readers) keeps the same, and says so.
        outcome = try run([archive, Self.segment(15)])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderr == "walferry-cleanup: keeping WAL file \"\(archive)/\(Self.segment(8))\" and later, which reader \"standby-b\" still needs\n")
        #expect(try Self.segments(archive) == Array(8...20))

        // -d names the holder on a reader's run too.
        outcome = try run(["-d", "--reader", "standby-b", archive, Self.segment(14)])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines.first == "walferry-cleanup: keeping WAL file \"\(archive)/\(Self.segment(12))\" and later, which reader \"standby-a\" still needs")
        #expect(try Self.segments(archive) == Array(12...20))

        outcome = try run(["--list-readers", archive])
        #expect(outcome.status == 0 && outcome.stderr == "", "\(outcome)")
        #expect(outcome.stdoutLines.count == 3)
        #expect(outcome.stdoutLines.first == "READER     OLDEST KEPT WAL FILE      REPORTED (UTC)       AGE       STATE")
        #expect(outcome.stdoutLines.dropFirst().map { $0.prefix(35) } == [
            "standby-a  \(Self.segment(12))", "standby-b  \(Self.segment(14))",
        ].map { Substring($0) })
        #expect(outcome.stdoutLines.dropFirst().allSatisfy { $0.hasSuffix("active") })

        outcome = try run(["--forget-reader", "standby-a", archive])
        #expect(outcome.status == 0 && outcome.stdout == "" && outcome.stderr == "", "\(outcome)")
        outcome = try run(["--reader", "standby-b", archive, Self.segment(16)])
        #expect(outcome.status == 0 && outcome.stderr == "", "\(outcome)")
        #expect(try Self.segments(archive) == Array(16...20))
        #expect(try listDirectory(archive + "/walferry.readers") == [".lock", "standby-b"])
    }

    @Test func aReaderThatGoesBackIsAcceptedAndSaid() throws {
        let folder = try TemporaryDirectory()
        let archive = try Self.archive(1...20, in: folder)
        // Ages in whole units, far from the next one, so that a slow run prints the same.
        try Self.writeReader("a", at: 10, age: 2 * 3_600 + 1_800, in: archive)
        try Self.writeReader("b", at: 12, age: 60, in: archive)
        let outcome = try run(["--reader", "a", archive, Self.segment(6)])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines == [
            "walferry-cleanup: warning: reader \"a\" needs WAL from \"\(Self.segment(6))\", older than the \"\(Self.segment(10))\" it reported 2h 30m ago: accepted",
            "walferry-cleanup: hint: A standby restored from an older backup needs older WAL; nothing older than \"\(Self.segment(6))\" is kept for it.",
        ])
        #expect(try Self.segments(archive) == Array(6...20))
        let record = String(decoding: try readFile(archive + "/walferry.readers/a"), as: UTF8.self)
        #expect(record.contains("oldest kept wal file: \(Self.segment(6))\n"))
    }

    @Test func staleReadersAreWarnedAboutAndExpiredOnesHoldNothing() throws {
        let folder = try TemporaryDirectory()
        let archive = try Self.archive(1...20, in: folder)
        try Self.writeReader("fresh", at: 15, age: 0, in: archive)
        try Self.writeReader("stale", at: 8, age: 4 * 86_400 + 3_600 + 1_800, in: archive)
        try Self.writeReader("gone", at: 3, age: 8 * 86_400, in: archive)

        var outcome = try run(["--reader", "fresh", archive, Self.segment(16)])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines == [
            "walferry-cleanup: warning: reader \"gone\" last reported 8d ago, past its expiry of 7d: the WAL it needs from \"\(Self.segment(3))\" is no longer kept for it",
            "walferry-cleanup: hint: If it is gone for good: walferry-cleanup --forget-reader gone \(archive)",
            "walferry-cleanup: warning: reader \"stale\" last reported 4d 1h ago (expiry 7d): it still holds WAL from \"\(Self.segment(8))\" back",
        ])
        #expect(try Self.segments(archive) == Array(8...20))

        // A longer expiry: "gone" holds again; a shorter one: "stale" is past it too.
        outcome = try run(["-n", "--reader-expiry", "9d", "--reader", "fresh", archive, Self.segment(16)])
        #expect(outcome.status == 0 && outcome.stdout.contains(Self.segment(3)) == false, "\(outcome)")
        #expect(outcome.stderrLines == [
            "walferry-cleanup: warning: reader \"gone\" last reported 8d ago (expiry 9d): it still holds WAL from \"\(Self.segment(3))\" back",
        ])
        outcome = try run(["--reader-expiry", "72h", "--reader", "fresh", archive, Self.segment(16)])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines.filter { $0.contains("is no longer kept for it") }.count == 2, "\(outcome)")
        #expect(try Self.segments(archive) == Array(16...20))

        outcome = try run(["--list-readers", "--reader-expiry", "7d", archive])
        let states = outcome.stdoutLines.dropFirst().map { line in
            String(line.split(separator: " ", maxSplits: 1)[0]) + ": " + String(line.dropFirst(65))
        }
        #expect(states == ["fresh: active", "gone: expired: holds nothing back", "stale: stale: expires in 2d 22h"], "\(outcome)")
    }

    @Test func keptBackupsHoldTheirWAL() throws {
        let folder = try TemporaryDirectory()
        let archive = try Self.archive(1...20, in: folder)
        let backups = try folder.makeDirectory("backups")
        let backup = try folder.makeDirectory("backups/20261201T000000Z")
        // Start-LSN 0/7000028: segment 7 of 16 MB segments. The manifest is checked as the server's
        // tools check it, its SHA-256 included.
        let body = """
            { "PostgreSQL-Backup-Manifest-Version": 1,
            "Files": [
            ],
            "WAL-Ranges": [
            { "Timeline": 1, "Start-LSN": "0/7000028", "End-LSN": "0/7000100" }
            ],

            """
        let digest = try runProcess("/usr/bin/sha256sum", [], input: Array(body.utf8)).stdout.prefix(64)
        try writeFile(backup + "/backup_manifest", Array((body + "\"Manifest-Checksum\": \"\(digest)\"}\n").utf8))
        _ = try folder.makeDirectory("backups/.partial-20261202T000000Z")  // not complete: not kept

        var outcome = try run(["--backups", backups, archive, Self.segment(12)])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderr == "walferry-cleanup: keeping WAL file \"\(archive)/\(Self.segment(7))\" and later, which backup \"\(backups)/20261201T000000Z\" still needs\n")
        #expect(try Self.segments(archive) == Array(7...20))
        #expect(!entryExists(archive + "/walferry.readers"), "--backups alone registers nothing")

        // A damaged manifest stops the cleanup: skipping that backup would remove its WAL.
        var manifest = try readFile(backup + "/backup_manifest")
        manifest[manifest.count - 10] ^= 1
        try writeFile(backup + "/backup_manifest", manifest)
        outcome = try run(["--backups", backups, archive, Self.segment(5)])
        #expect(outcome.status == 1, "\(outcome)")
        #expect(outcome.stderrLines.first?.hasPrefix("walferry-cleanup: error: backup manifest \"\(backup)/backup_manifest\" checksum mismatch: actual ") == true, "\(outcome)")
        #expect(outcome.stderrLines.last == "walferry-cleanup: hint: Nothing was removed.")
        #expect(try Self.segments(archive) == Array(7...20))

        try FileManager.default.removeItem(atPath: backup)
        outcome = try run(["--backups", backups, archive, Self.segment(12)])
        #expect(outcome.status == 0 && outcome.stderr == "", "\(outcome)")
        #expect(try Self.segments(archive) == Array(12...20))
    }

    struct BadInput: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let prepare: @Sendable (String) throws -> Void
        let status: Int32
        let stderr: [String]
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let badInputs: [BadInput] = [
        BadInput(arguments: ["--reader", "nobody", "ARCHIVE", segment(15)], prepare: { try writeReader("a", at: 3, age: 0, in: $0) }, status: 2, stderr: [
            "walferry-cleanup: error: reader \"nobody\" is not registered in archive \"ARCHIVE\"",
            "walferry-cleanup: hint: Nothing was removed. Register it first: walferry-cleanup --register nobody ARCHIVE SEGMENT",
            "walferry-cleanup: hint: \"walferry-cleanup --list-readers ARCHIVE\" shows the registered readers.",
        ]),
        BadInput(arguments: ["--reader", "first", "ARCHIVE", segment(15)], prepare: { _ in }, status: 2, stderr: [
            "walferry-cleanup: error: reader \"first\" is not registered in archive \"ARCHIVE\"",
            "walferry-cleanup: hint: Nothing was removed. Register it first: walferry-cleanup --register first ARCHIVE SEGMENT",
            "walferry-cleanup: hint: \"walferry-cleanup --list-readers ARCHIVE\" shows the registered readers.",
        ]),
        BadInput(arguments: ["--reader", "../x", "ARCHIVE", segment(15)], prepare: { _ in }, status: 2, stderr: [
            "walferry-cleanup: error: invalid reader name \"../x\"",
            "walferry-cleanup: hint: A reader name is 1 to 64 letters, digits, \"-\", \"_\" or \".\", and does not start with \".\".",
        ]),
        BadInput(arguments: ["--register", ".lock", "ARCHIVE", segment(1)], prepare: { _ in }, status: 2, stderr: [
            "walferry-cleanup: error: invalid reader name \".lock\"",
            "walferry-cleanup: hint: A reader name is 1 to 64 letters, digits, \"-\", \"_\" or \".\", and does not start with \".\".",
        ]),
        BadInput(arguments: ["ARCHIVE", segment(15)], prepare: { archive in
            try writeReader("a", at: 3, age: 0, in: archive)
            try writeFile(archive + "/walferry.readers/b", Array("walferry archive reader 1\nname: b\n".utf8))
        }, status: 1, stderr: [
            "walferry-cleanup: error: invalid reader file \"ARCHIVE/walferry.readers/b\"",
            "walferry-cleanup: hint: walferry-cleanup writes it. Nothing was removed; forget the reader with --forget-reader and register it again.",
        ]),
        BadInput(arguments: ["--reader", "a", "ARCHIVE", segment(15)], prepare: { archive in
            try writeReader("a", at: 3, age: 0, in: archive)
            try writeReader("b", at: 9, age: 0, in: archive, systemIdentifier: 42)
        }, status: 1, stderr: [
            "walferry-cleanup: error: reader file \"ARCHIVE/walferry.readers/b\" belongs to another cluster: system identifier 42, the archive's is \(testSystemIdentifier)",
            "walferry-cleanup: hint: Nothing was removed. Was it copied from another archive? Forget the reader with --forget-reader.",
        ]),
        BadInput(arguments: ["--reader", "a", "ARCHIVE", segment(15)], prepare: { archive in
            try writeReader("a", at: 3, age: 0, in: archive)
            try FileManager.default.removeItem(atPath: archive + "/walferry.identity")
        }, status: 1, stderr: [
            "walferry-cleanup: error: archive \"ARCHIVE\" has no identity record \"ARCHIVE/walferry.identity\"",
            "walferry-cleanup: hint: Readers and --backups work on archives that walferry-archive fills: it writes the record with the first segment. Nothing was removed.",
        ]),
        BadInput(arguments: ["--forget-reader", "nobody", "ARCHIVE"], prepare: { try writeReader("a", at: 3, age: 0, in: $0) }, status: 2, stderr: [
            "walferry-cleanup: error: reader \"nobody\" is not registered in archive \"ARCHIVE\"",
            "walferry-cleanup: hint: Nothing was removed. Register it first: walferry-cleanup --register nobody ARCHIVE SEGMENT",
            "walferry-cleanup: hint: \"walferry-cleanup --list-readers ARCHIVE\" shows the registered readers.",
        ]),
        BadInput(arguments: ["--register", "late", "ARCHIVE", segment(1)], prepare: { archive in
            try FileManager.default.removeItem(atPath: archive + "/" + segment(1))
            try FileManager.default.removeItem(atPath: archive + "/" + segment(2))
        }, status: 1, stderr: [
            "walferry-cleanup: error: WAL file \"\(segment(1))\" is no longer in archive \"ARCHIVE\", which holds later WAL from \"\(segment(3))\"",
            "walferry-cleanup: hint: A standby that needs it cannot catch up from this archive: take a new base backup and register its start segment.",
        ]),
        BadInput(arguments: ["--reader-expiry", "7w", "ARCHIVE", segment(15)], prepare: { _ in }, status: 2, stderr: [
            "walferry-cleanup: error: invalid reader expiry \"7w\": give hours (36h) or days (7d)",
            "walferry-cleanup: hint: Try \"walferry-cleanup --help\" for more information.",
        ]),
        BadInput(arguments: ["--register", "x", "--reader", "y", "ARCHIVE", segment(15)], prepare: { _ in }, status: 2, stderr: [
            "walferry-cleanup: error: --register cannot be combined with the options of a cleanup",
            "walferry-cleanup: hint: Try \"walferry-cleanup --help\" for more information.",
        ]),
        BadInput(arguments: ["--list-readers", "ARCHIVE", segment(15)], prepare: { _ in }, status: 2, stderr: [
            "walferry-cleanup: error: too many command-line arguments",
            "walferry-cleanup: hint: Try \"walferry-cleanup --help\" for more information.",
        ]),
    ]

    @Test(arguments: badInputs)
    func badInputRemovesNothing(_ input: BadInput) throws {
        let folder = try TemporaryDirectory()
        let archive = try Self.archive(1...20, in: folder)
        try input.prepare(archive)
        let before = try listDirectory(archive)
        let readersBefore = entryExists(archive + "/walferry.readers") ? try listDirectory(archive + "/walferry.readers") : []
        let outcome = try run(input.arguments.map { $0 == "ARCHIVE" ? archive : $0 })
        #expect(outcome.status == input.status, "\(outcome)")
        #expect(outcome.stdout == "")
        #expect(outcome.stderrLines == input.stderr.map { $0.replacingOccurrences(of: "ARCHIVE", with: archive) })
        #expect(try listDirectory(archive) == before)
        let readersAfter = entryExists(archive + "/walferry.readers") ? try listDirectory(archive + "/walferry.readers") : []
        #expect(readersAfter.filter { $0 != ".lock" } == readersBefore.filter { $0 != ".lock" })
    }

    /// Two standbys' cleanups and a new standby's registration, all at once, many times: the new reader,
    /// once registered, always finds its WAL (a cleanup decides and removes under the readers' lock),
    /// and no reader's WAL is ever removed.
    @Test func cleanupsRacingARegistrationNeverRemoveWhatItNeeds() throws {
        let folder = try TemporaryDirectory()
        for round in 0..<12 {
            let archive = try Self.archive(1...1500, in: folder, name: "archive\(round)")
            try Self.writeReader("a", at: 600, age: 0, in: archive)
            try Self.writeReader("b", at: 900, age: 0, in: archive)
            let first = try RunningProcess(walferryTool(Self.tool), ["--reader", "a", archive, Self.segment(1000)])
            let second = try RunningProcess(walferryTool(Self.tool), ["--reader", "b", archive, Self.segment(1200)])
            let register = try RunningProcess(walferryTool(Self.tool), ["--register", "c", archive, Self.segment(200 + round * 20)])
            let outcomes = try [first.wait(timeout: 60), second.wait(timeout: 60), register.wait(timeout: 60)]
            #expect(outcomes[0].status == 0 && outcomes[1].status == 0, "\(outcomes)")
            let left = try Self.segments(archive)
            #expect(left.first.map { $0 <= 1000 } == true, "round \(round): a's WAL was removed: from \(left.first ?? -1)")
            if outcomes[2].status == 0 {
                #expect(left.first == 200 + round * 20, "round \(round): c registered at \(200 + round * 20), archive starts at \(left.first ?? -1)")
            } else {
                #expect(outcomes[2].stderr.contains("is no longer in archive"), "\(outcomes[2])")
            }
            try FileManager.default.removeItem(atPath: archive)
        }
    }
}
