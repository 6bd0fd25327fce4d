// pg_archivecleanup's cut-off normalisation and removal test, case by case
// (docs/server-rules.md §1: pg_archivecleanup.c, SetWALFileNameForCleanup and CleanupPriorWALFiles). The differential tests in EndToEndTests
// compare the whole tool with the real pg_archivecleanup on random archives.

import Testing
@testable import WalferryCore

struct CleanupRulesTests {
    struct Cutoff: Sendable, CustomTestStringConvertible {
        let argument: String
        let strip: String?
        /// The normalised 24-character cut-off, or nil when the argument is invalid.
        let normalised: String?
        var testDescription: String { "\(argument) -x \(strip ?? "none")" }
    }

    static let cutoffs: [Cutoff] = [
        Cutoff(argument: "000000010000000000000003", strip: nil, normalised: "000000010000000000000003"),
        Cutoff(argument: "000000000000000000000000", strip: nil, normalised: "000000000000000000000000"),  // %r early in recovery
        Cutoff(argument: "000000010000000000000003.partial", strip: nil, normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003.00000028.backup", strip: nil, normalised: "000000010000000000000003"),
        Cutoff(argument: "000000090000000000000003.backup", strip: nil, normalised: "000000090000000000000003"),  // %08X eats "bac"
        Cutoff(argument: "000000010000000000000003.1.backup", strip: nil, normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003.0x1.backup", strip: nil, normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003.XYZ.backup", strip: nil, normalised: nil),
        Cutoff(argument: "000000010000000000000003garbage.backup", strip: nil, normalised: nil),
        Cutoff(argument: "000000010000000000000003.partialx", strip: nil, normalised: nil),
        Cutoff(argument: "00000002.history", strip: nil, normalised: nil),
        Cutoff(argument: "00000001000000000000000a", strip: nil, normalised: nil),
        Cutoff(argument: "0000000100000000000000003", strip: nil, normalised: nil),
        Cutoff(argument: "ac/000000010000000000000003", strip: nil, normalised: nil),
        Cutoff(argument: "", strip: nil, normalised: nil),
        Cutoff(argument: "000000010000000000000003.gz", strip: ".gz", normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003", strip: ".gz", normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003.gz.gz", strip: ".gz", normalised: nil),  // stripped once
        Cutoff(argument: "000000010000000000000003.gz", strip: "gz", normalised: nil),  // leaves a trailing dot
        Cutoff(argument: "000000010000000000000003.bz2", strip: ".gz", normalised: nil),
        Cutoff(argument: "000000010000000000000003.partial.gz", strip: ".gz", normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003.00000028.backup.gz", strip: ".gz", normalised: "000000010000000000000003"),
        Cutoff(argument: "000000010000000000000003", strip: "", normalised: "000000010000000000000003"),
        Cutoff(argument: ".gz", strip: ".gz", normalised: nil),  // not longer than the extension: nothing stripped
    ]

    @Test(arguments: cutoffs)
    func normalisesTheCutoff(_ case_: Cutoff) {
        do {
            let rules = try CleanupRules(oldestKeptWALFile: case_.argument, stripExtension: case_.strip, cleanBackupHistory: false)
            #expect(String(decoding: rules.cutoff, as: UTF8.self) == case_.normalised)
        } catch {
            #expect(case_.normalised == nil, "rejected a valid cut-off")
        }
    }

    static func removes(_ rules: CleanupRules, _ name: String) -> Bool {
        Array(name.utf8).withUnsafeBufferPointer { rules.removes($0) }
    }

    @Test func table16Row1() throws {
        let rules = try CleanupRules(oldestKeptWALFile: "000000010000000000000003", stripExtension: nil, cleanBackupHistory: false)
        let removed = ["000000010000000000000001", "000000010000000000000002", "000000020000000000000002",
                       "000000010000000000000002.partial"]
        let kept = ["000000010000000000000003", "00000003000000000000000F", "000000010000000000000003.partial",
                    "000000010000000000000002.00000028.backup", "000000010000000000000003.00000028.backup",
                    "00000002.history", "000000010000000000000001.gz", "0000000100000000000000001",
                    "00000001000000000000000a", "notwal", "", "000000030000000000000003"]
        for name in removed { #expect(Self.removes(rules, name), "\(name) should be removed") }
        for name in kept { #expect(!Self.removes(rules, name), "\(name) should be kept") }
    }

    @Test func backupHistoryOnlyWithB() throws {
        let withB = try CleanupRules(oldestKeptWALFile: "000000010000000000000003", stripExtension: nil, cleanBackupHistory: true)
        #expect(Self.removes(withB, "000000010000000000000002.00000028.backup"))
        #expect(Self.removes(withB, "000000010000000000000001X.backup"))  // the predicate is loose
        #expect(!Self.removes(withB, "000000010000000000000003.00000028.backup"))  // the cut-off's own is kept
        #expect(!Self.removes(withB, "00000002.history"))
    }

    @Test func stripsTheExtensionFromEntries() throws {
        let rules = try CleanupRules(oldestKeptWALFile: "000000010000000000000003.gz", stripExtension: ".gz", cleanBackupHistory: false)
        #expect(Self.removes(rules, "000000010000000000000001.gz"))
        #expect(Self.removes(rules, "000000010000000000000002"))  // files without the extension count too
        #expect(Self.removes(rules, "000000010000000000000002.partial.gz"))
        #expect(!Self.removes(rules, "000000010000000000000001.bz2"))
        #expect(!Self.removes(rules, "000000010000000000000001.gz.tmp"))
        #expect(!Self.removes(rules, "000000010000000000000003.gz"))
    }

    @Test func comparesAcrossTheLogBoundaryAsStrings() throws {
        let rules = try CleanupRules(oldestKeptWALFile: "000000010000000100000000", stripExtension: nil, cleanBackupHistory: false)
        #expect(Self.removes(rules, "0000000100000000000000FF"))
        #expect(Self.removes(rules, "000000010000000000000100"))
        #expect(!Self.removes(rules, "000000010000000100000000"))
        #expect(!Self.removes(rules, "000000010000000100000001"))
    }

    @Test func hintsNameTheLikelyMistake() {
        func hint(_ argument: String, _ strip: String? = nil) -> String? {
            do {
                _ = try CleanupRules(oldestKeptWALFile: argument, stripExtension: strip, cleanBackupHistory: false)
                return "accepted"
            } catch { return error.hint }
        }
        #expect(hint("/mnt/archive/000000010000000000000003") == "OLDESTKEPTWALFILE is a file name, not a path; archive_cleanup_command passes it as %r.")
        #expect(hint("000000010000000000000003.gz", "gz") == "The extension is matched with its dot: use -x .gz.")
        #expect(hint("00000001000000000000000a") == "WAL file names are written in upper-case hexadecimal.")
        #expect(hint("00000002.history") == "A timeline history file marks no position in WAL; give a segment, .partial or .backup file name.")
        #expect(hint("000000010000000000000003.bz2") == "To clean up compressed files, give their extension: -x .bz2.")
        #expect(hint("garbage") == nil)
    }
}
