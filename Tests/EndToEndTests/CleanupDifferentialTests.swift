// walferry-cleanup against the real pg_archivecleanup, on hundreds of random and edge-case archives.
//
// Each case builds an archive folder of WAL-like names (segments of several timelines, .partial,
// loose and strict .backup names, .history, compression extensions, lower case, wrong lengths,
// symbolic links), picks a cut-off and options, and runs both tools:
// - a dry run of each on the same folder: the exit status and the listing (in readdir order) must be
//   identical, and so must the debug lines;
// - a real run of each on its own identical copy: the exit status and the files left must be identical.
// PostgreSQL 15 (Debian's) and 17 (the only one with -b) take turns as the reference. The fixed seeds
// run every time, plus fresh ones; a failure names its seed, and WALFERRY_CLEANUP_SEED=N reruns one.
//
// Directories and unremovable files are left out on purpose: there walferry-cleanup is meant to differ
// (it goes on after a failure); CleanupCLITests covers those cases.

import Foundation
import Testing
import TestSupport

@Suite struct CleanupDifferentialTests {
    typealias Generator = SplitMix64

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func segment(_ rng: inout Generator) -> String {
        let timeline: UInt32 = [1, 1, 1, 2, 3, 0x10, UInt32.random(in: 0...0xFFFF_FFFF, using: &rng)].randomElement(using: &rng) ?? 1
        let log: UInt32 = [0, 0, 0, 1, 0xFF, UInt32.random(in: 0...3, using: &rng)].randomElement(using: &rng) ?? 0
        let seg: UInt32 = [UInt32.random(in: 0...0x12, using: &rng), UInt32.random(in: 0...0x12, using: &rng), 0xFF, 0xFE, 0x100]
            .randomElement(using: &rng) ?? 0
        return hex8(timeline) + hex8(log) + hex8(seg)
    }

    /// A name of one of the shapes an archive (or a confused user) holds.
    static func name(_ rng: inout Generator) -> String {
        let base = segment(&rng)
        var name: String
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<40: name = base
        case 40..<50: name = base + ".partial"
        case 50..<60: name = base + "." + hex8(UInt32.random(in: 0...0xFFFFFF, using: &rng)) + ".backup"
        case 60..<63: name = base + ".backup"
        case 63..<66: name = base + ([".1.backup", ".0x1.backup", ".XYZ.backup", "garbage.backup", ". 1.backup", ".+1.backup",
                                      ".-1.backup", ".0x.backup", ".123456789.backup", ".partial.backup"].randomElement(using: &rng) ?? "")
        case 66..<70: name = base + "X.backup"
        case 70..<75: name = hex8(UInt32.random(in: 1...20, using: &rng)) + ".history"
        case 75..<80: name = base.lowercased()
        case 80..<84: name = Bool.random(using: &rng) ? base + "0" : String(base.dropLast())
        case 84..<87: name = base + ".partialx"
        case 87..<90: name = base + ".PARTIAL"
        default: name = ["notwal", "backup_label", ".hidden", "archive_status", "-n", "0000"].randomElement(using: &rng) ?? "x"
        }
        if Int.random(in: 0..<100, using: &rng) < 25 {
            name += [".gz", ".bz2", ".gz.tmp", ".gz.gz", ".zst", "gz"].randomElement(using: &rng) ?? ""
        }
        return name
    }

    struct Case {
        var names: Set<String> = []
        var links: Set<String> = []  // symbolic links, half of them dangling
        var cutoff = ""
        var options: [String] = []
        var reference = 15
    }

    static func makeCase(seed: UInt64) -> Case {
        var rng = Generator(seed: seed)
        var example = Case()
        let count = Int.random(in: 0...40, using: &rng)
        for _ in 0..<count {
            if Int.random(in: 0..<10, using: &rng) == 0 { example.links.insert(name(&rng)) } else { example.names.insert(name(&rng)) }
        }
        example.names.subtract(example.links)
        let existing = Array(example.names)
        if !existing.isEmpty, Int.random(in: 0..<5, using: &rng) == 0 {
            example.cutoff = existing.randomElement(using: &rng) ?? ""
        } else {
            example.cutoff = name(&rng)
        }
        if let strip = [nil, nil, nil, nil, ".gz", ".gz", ".bz2", "gz", "", ".partial", ".backup", ".gz.gz"].randomElement(using: &rng), let strip {
            example.options += ["-x", strip]
        }
        if Bool.random(using: &rng) { example.options.append("-d") }
        example.reference = Bool.random(using: &rng) ? 15 : 17
        if example.reference == 17, Bool.random(using: &rng) { example.options.append("-b") }
        example.options.shuffle(using: &rng)
        return example
    }

    static func build(_ example: Case, at dir: String, outside: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in example.names { try writeFile(dir + "/" + name, [0x57]) }
        for (index, name) in example.links.sorted().enumerated() {
            let target = index.isMultiple(of: 2) ? outside + "/target" : outside + "/missing"
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + name, withDestinationPath: target)
        }
    }

    /// Runs one case; returns a description of every difference (empty when the tools agree).
    static func check(seed: UInt64, pg: [Int: PostgresInstallation], scratch: String) throws -> [String] {
        let example = makeCase(seed: seed)
        let reference = try #require(pg[example.reference]).tool("pg_archivecleanup")
        let root = scratch + "/\(seed)"
        let outside = root + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try writeFile(outside + "/target", [1])
        defer { try? FileManager.default.removeItem(atPath: root) }
        var differences: [String] = []

        // The dry runs see the very same folder, so readdir order is the same for both.
        let shared = root + "/ac"
        try build(example, at: shared, outside: outside)
        let arguments = example.options + ["-n", "--", shared, example.cutoff]
        let theirs = try runProcess(reference, arguments)
        let ours = try runTool("walferry-cleanup", arguments)
        if theirs.status != ours.status { differences.append("dry-run status: pg \(theirs.status), walferry \(ours.status)") }
        if theirs.stdout != ours.stdout { differences.append("dry-run listing:\npg:\n\(theirs.stdout)walferry:\n\(ours.stdout)") }
        let theirErrors = theirs.stderr.replacingOccurrences(of: "pg_archivecleanup: ", with: "walferry-cleanup: ")
        if theirs.status == 0, theirErrors != ours.stderr {
            differences.append("dry-run messages:\npg:\n\(theirErrors)walferry:\n\(ours.stderr)")
        }
        if theirs.status != 0, theirErrors.split(separator: "\n").first != ours.stderr.split(separator: "\n").first {
            differences.append("error message:\npg:\n\(theirErrors)walferry:\n\(ours.stderr)")
        }

        // The real runs each get their own copy.
        let mine = root + "/mine", other = root + "/theirs"
        try build(example, at: other, outside: outside)
        try build(example, at: mine, outside: outside)
        let theirRun = try runProcess(reference, example.options + ["--", other, example.cutoff])
        let ourRun = try runTool("walferry-cleanup", example.options + ["--", mine, example.cutoff])
        if theirRun.status != ourRun.status { differences.append("status: pg \(theirRun.status), walferry \(ourRun.status)") }
        let left = try listDirectory(other), ourLeft = try listDirectory(mine)
        if left != ourLeft { differences.append("files left:\npg:       \(left)\nwalferry: \(ourLeft)") }
        if !entryExists(outside + "/target") { differences.append("a symbolic link's target outside the archive was removed") }

        guard differences.isEmpty else {
            return ["seed \(seed) (PostgreSQL \(example.reference), options \(example.options), cut-off \(example.cutoff), "
                    + "names \(example.names.sorted()), links \(example.links.sorted())):"] + differences
        }
        return []
    }

    @Test func agreesWithPgArchivecleanupOnRandomArchives() throws {
        let pg = [15: try PostgresInstallation.version(15), 17: try PostgresInstallation.version(17)]
        // tmpfs keeps the thousands of small files cheap where it is available.
        let scratch = try TemporaryDirectory(prefix: "walferry-diff",
                                             base: FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : nil)
        var seeds: [UInt64]
        if let one = ProcessInfo.processInfo.environment["WALFERRY_CLEANUP_SEED"].flatMap(UInt64.init) {
            seeds = [one]
        } else {
            seeds = Array(1...250)
            var fresh = SystemRandomNumberGenerator()
            seeds += (0..<100).map { _ in fresh.next() }
        }
        var failures = 0
        for seed in seeds {
            let differences = try Self.check(seed: seed, pg: pg, scratch: scratch.path)
            if !differences.isEmpty {
                failures += 1
                Issue.record(Comment(rawValue: differences.joined(separator: "\n") + "\nrerun: WALFERRY_CLEANUP_SEED=\(seed) swift test --filter CleanupDifferentialTests"))
                if failures >= 5 { break }
            }
        }
    }

    /// The edge cases of pg_archivecleanup's rules (docs/server-rules.md §1), one archive holding them all, each compared with both versions.
    @Test(arguments: [15, 17])
    func agreesOnTheDocumentedEdgeCases(_ version: Int) throws {
        let pg = try PostgresInstallation.version(version)
        let folder = try TemporaryDirectory()
        let standard = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003",
                        "000000020000000000000002", "00000003000000000000000F", "000000010000000000000002.partial",
                        "000000010000000000000003.partial", "000000010000000000000002.00000028.backup",
                        "000000010000000000000003.00000028.backup", "00000002.history", "000000010000000000000001.gz",
                        "0000000100000000000000001", "00000001000000000000000a", "notwal"]
        let rows: [(options: [String], cutoff: String, names: [String])] = [
            ([], "000000010000000000000003", standard),
            ([], "000000090000000000000003", standard),
            (["-d"], "000000010000000000000003.partial", standard),
            ([], "000000010000000000000003.00000028.backup", standard),
            ([], "000000010000000000000003.backup", standard),
            ([], "000000010000000000000003.1.backup", standard),
            ([], "000000010000000000000003.0x1.backup", standard),
            ([], "000000010000000000000003.XYZ.backup", standard),
            ([], "000000010000000000000003garbage.backup", standard),
            ([], "000000010000000000000003.partialx", standard),
            ([], "00000002.history", standard),
            ([], "00000001000000000000000a", standard),
            ([], "0000000100000000000000003", standard),
            (["-x", ".gz"], "000000010000000000000003.gz",
             ["000000010000000000000001.gz", "000000010000000000000002", "000000010000000000000002.partial.gz",
              "000000010000000000000003.gz", "000000010000000000000001.bz2", "000000010000000000000001.gz.tmp"]),
            (["-x", ".gz"], "000000010000000000000003", ["000000010000000000000001.gz", "000000010000000000000002"]),
            (["-x", "gz"], "000000010000000000000003.gz", ["000000010000000000000001.gz"]),
            (["-x", ".gz"], "000000010000000000000003.bz2", ["000000010000000000000001.gz"]),
            (["-x", ".gz", "-x", ".bz2"], "000000010000000000000003", ["000000010000000000000001.gz", "000000010000000000000001.bz2"]),
            (["-x", ""], "000000010000000000000003", ["000000010000000000000001", "000000010000000000000001.gz"]),
            (["-x", ".gz"], "000000010000000000000003.partial.gz",
             ["000000010000000000000002.gz", "000000010000000000000003.partial.gz", "000000010000000000000002.00000028.backup.gz"]),
            (["-x", ".gz"], "000000010000000000000003.00000028.backup.gz", ["000000010000000000000002.gz"]),
            (["-x", ".partial"], "000000010000000000000003", ["000000010000000000000002.partial", "000000010000000000000002"]),
            ([], "000000010000000100000000", ["000000010000000100000000", "0000000100000000000000FF", "000000010000000000000100"]),
            ([], "000000010000000000000001", standard),
            ([], "000000010000000000000003", ["000000020000000000000003", "000000020000000000000002"]),
            ([], "000000010000000000000003", []),
        ]
        for (index, row) in rows.enumerated() {
            let theirs = folder.join("theirs\(index)"), mine = folder.join("mine\(index)")
            for dir in [theirs, mine] {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                for name in row.names { try writeFile(dir + "/" + name, [1]) }
            }
            let dry = try runProcess(pg.tool("pg_archivecleanup"), row.options + ["-n", theirs, row.cutoff])
            let ourDry = try runTool("walferry-cleanup", row.options + ["-n", theirs, row.cutoff])
            #expect(dry.status == ourDry.status, "row \(index)")
            #expect(dry.stdout == ourDry.stdout, "row \(index)")
            let run = try runProcess(pg.tool("pg_archivecleanup"), row.options + [theirs, row.cutoff])
            let ourRun = try runTool("walferry-cleanup", row.options + [mine, row.cutoff])
            #expect(run.status == ourRun.status, "row \(index)")
            #expect(try listDirectory(theirs) == listDirectory(mine), "row \(index): \(row.options) \(row.cutoff)")
        }
    }
}
