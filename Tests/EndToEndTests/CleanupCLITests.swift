// walferry-cleanup as a user meets it: help, version, every usage error, every failure message and
// exit status, and the places where it is safer than pg_archivecleanup (every failure reported, no
// directory removed, no symbolic link followed). The exact decision on each file is compared with the
// real pg_archivecleanup in CleanupDifferentialTests.

import Foundation
import Testing
import TestSupport

@Suite struct CleanupCLITests {
    static let tool = "walferry-cleanup"
    static let tryHelp = "walferry-cleanup: hint: Try \"walferry-cleanup --help\" for more information."

    /// An archive folder holding empty files with these names.
    static func archive(_ names: [String], in folder: TemporaryDirectory, named: String = "archive") throws -> String {
        let dir = try folder.makeDirectory(named)
        for name in names { try writeFile(dir + "/" + name, [1]) }
        return dir
    }

    @Test func helpIsPinned() throws {
        let expected = """
            OVERVIEW: Remove WAL files older than a given one from a PostgreSQL WAL
            archive.

            Makes the same decision as pg_archivecleanup for every file, but goes through
            the whole archive when a removal fails, reports every failure and exits 1.

            For use as archive_cleanup_command in postgresql.conf:
              archive_cleanup_command = 'walferry-cleanup /mnt/archive %r'
            For an archive filled with walferry-archive ... %f.bz2:
              archive_cleanup_command = 'walferry-cleanup -x .bz2 /mnt/archive %r'
            Or as a standalone archive cleaner:
              walferry-cleanup /mnt/archive 000000010000000000000010.00000020.backup

            Several standbys on one archive: register each before it starts, with its base
            backup's start segment, then give each its name, so that no cleanup removes WAL
            that another standby (or, with --backups, a kept backup) still needs:
              walferry-cleanup --register a /mnt/archive SEGMENT
              archive_cleanup_command = 'walferry-cleanup --reader a /mnt/archive %r'

            Exit status: 0 done (also when nothing was removed), 1 a file could not be
            removed, the archive or a reader's record could not be read or written, or
            another cleanup held the readers' lock too long, 2 usage error, missing archive
            location, invalid file name, invalid or unknown reader name.

            USAGE: walferry-cleanup [OPTION]... ARCHIVELOCATION OLDESTKEPTWALFILE
                     walferry-cleanup --register NAME ARCHIVELOCATION SEGMENT
                     walferry-cleanup --forget-reader NAME ARCHIVELOCATION
                     walferry-cleanup --list-readers ARCHIVELOCATION

            ARGUMENTS:
              <ARCHIVELOCATION>       The archive directory.
              <OLDESTKEPTWALFILE>     The oldest WAL file to keep (%r): a segment, .partial
                                      or .backup file name.

            OPTIONS:
              -b, --clean-backup-history
                                      Also remove backup history files (*.backup) older
                                      than OLDESTKEPTWALFILE.
              -d, --debug             Print debug messages on standard error.
              -n, --dry-run           Print the path of each file that would be removed on
                                      standard output; remove nothing.
              -x, --strip-extension <EXT>
                                      Strip this extension, dot included (.bz2), before
                                      examining file names.
              --reader <NAME>         Record OLDESTKEPTWALFILE as this registered reader's,
                                      then keep what every reader needs.
              --backups <DIR>         Also keep the WAL of every complete backup in this
                                      walferry-backup directory.
              --reader-expiry <AGE>   Stop holding WAL for a reader silent this long: hours
                                      (36h) or days (7d, the default).
              --register <NAME>       Register a new reader that needs WAL from SEGMENT on
                                      (its base backup's start segment).
              --forget-reader <NAME>  Remove a registered reader that is gone for good.
              --list-readers          List the registered readers, their positions and ages.
              -V, --version           Print the version and exit.
              -h, -?, --help          Show help information.


            """
        for flag in ["--help", "-?", "-h"] {
            let outcome = try runTool(Self.tool, [flag])
            #expect(outcome.status == 0)
            #expect(outcome.stdout == expected)
            #expect(outcome.stderr == "")
        }
    }

    @Test(arguments: ["--version", "-V"])
    func version(_ flag: String) throws {
        let outcome = try runTool(Self.tool, [flag])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "walferry-cleanup (walferry) 0.1.0\n")
        #expect(outcome.stderr == "")
    }

    struct UsageError: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let message: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let usageErrors = [
        UsageError(arguments: [], message: "must specify archive location"),
        UsageError(arguments: ["/tmp"], message: "must specify oldest kept WAL file"),
        UsageError(arguments: ["/tmp", "000000010000000000000003", "extra"], message: "too many command-line arguments"),
        UsageError(arguments: ["-z", "/tmp", "000000010000000000000003"], message: "unknown option '-z'"),
        UsageError(arguments: ["--bogus", "/tmp", "000000010000000000000003"], message: "unknown option '--bogus'"),
        UsageError(arguments: ["/tmp", "000000010000000000000003", "-x"], message: "missing value for '-x'"),
    ]

    @Test(arguments: usageErrors)
    func usageErrorsExit2WithAHint(_ usage: UsageError) throws {
        let outcome = try runTool(Self.tool, usage.arguments)
        #expect(outcome.status == 2)
        #expect(outcome.stdout == "")
        #expect(outcome.stderrLines == ["walferry-cleanup: error: \(usage.message)", Self.tryHelp])
    }

    @Test func missingLocationIsCheckedBeforeTheName() throws {
        let folder = try TemporaryDirectory()
        let outcome = try runTool(Self.tool, [folder.join("nothere"), "bogus"])
        #expect(outcome.status == 2)
        #expect(outcome.stderrLines == ["walferry-cleanup: error: archive location \"\(folder.join("nothere"))\" does not exist"])
    }

    @Test func locationThatIsAFile() throws {
        let folder = try TemporaryDirectory()
        try writeFile(folder.join("file"), [1])
        let outcome = try runTool(Self.tool, [folder.join("file"), "000000010000000000000003"])
        #expect(outcome.status == 2)
        #expect(outcome.stderrLines == ["walferry-cleanup: error: archive location \"\(folder.join("file"))\" is not a directory"])
    }

    struct InvalidName: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let hint: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let invalidNames = [
        InvalidName(arguments: ["000000010000000000000003.XYZ.backup"], hint: tryHelp),
        InvalidName(arguments: ["/mnt/archive/000000010000000000000003"],
                    hint: "walferry-cleanup: hint: OLDESTKEPTWALFILE is a file name, not a path; archive_cleanup_command passes it as %r."),
        InvalidName(arguments: ["-x", "gz", "000000010000000000000003.gz"],
                    hint: "walferry-cleanup: hint: The extension is matched with its dot: use -x .gz."),
        InvalidName(arguments: ["00000001000000000000000a"],
                    hint: "walferry-cleanup: hint: WAL file names are written in upper-case hexadecimal."),
        InvalidName(arguments: ["00000002.history"],
                    hint: "walferry-cleanup: hint: A timeline history file marks no position in WAL; give a segment, .partial or .backup file name."),
        InvalidName(arguments: ["000000010000000000000003.bz2"],
                    hint: "walferry-cleanup: hint: To clean up compressed files, give their extension: -x .bz2."),
    ]

    @Test(arguments: invalidNames)
    func invalidCutoffsExit2AndRemoveNothing(_ invalid: InvalidName) throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000001", "000000010000000000000001.gz"], in: folder)
        var arguments = invalid.arguments
        arguments.insert(dir, at: arguments.count - 1)
        let outcome = try runTool(Self.tool, arguments)
        #expect(outcome.status == 2)
        #expect(outcome.stderrLines == ["walferry-cleanup: error: invalid file name argument", invalid.hint])
        #expect(try listDirectory(dir).count == 2)
    }

    @Test func dryRunListsAndDebugExplains() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000001", "000000020000000000000002", "000000010000000000000002.partial",
                                    "000000010000000000000003", "00000002.history"], in: folder)
        let outcome = try runTool(Self.tool, ["-d", "-n", dir, "000000010000000000000003.00000028.backup"])
        #expect(outcome.status == 0)
        let expected = ["000000010000000000000001", "000000020000000000000002", "000000010000000000000002.partial"].map { dir + "/" + $0 }
        #expect(outcome.stdoutLines.sorted() == expected.sorted())
        #expect(outcome.stderrLines.first == "walferry-cleanup: keeping WAL file \"\(dir)/000000010000000000000003\" and later")
        #expect(outcome.stderrLines.dropFirst().sorted() == expected.map { "walferry-cleanup: file \"\($0)\" would be removed" }.sorted())
        #expect(try listDirectory(dir).count == 5)

        let real = try runTool(Self.tool, ["--debug", dir, "000000010000000000000003"])
        #expect(real.status == 0)
        #expect(real.stdout == "")
        #expect(real.stderrLines.dropFirst().sorted() == expected.map { "walferry-cleanup: removing file \"\($0)\"" }.sorted())
        #expect(try listDirectory(dir) == ["000000010000000000000003", "00000002.history"])
    }

    @Test func directoriesAreNeverRemovedAndEveryFailureIsReported() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000002", "000000010000000000000004", "000000010000000000000006"], in: folder)
        try folder.makeDirectory("archive/000000010000000000000001")
        try folder.makeDirectory("archive/000000010000000000000003")
        try writeFile(dir + "/000000010000000000000003/inside", [1])

        let dry = try runTool(Self.tool, ["-n", dir, "000000010000000000000005"])
        #expect(dry.status == 0)
        #expect(dry.stdoutLines.sorted() == [dir + "/000000010000000000000002", dir + "/000000010000000000000004"])
        #expect(dry.stderrLines.sorted() == ["000000010000000000000001", "000000010000000000000003"].map {
            "walferry-cleanup: warning: \"\(dir)/\($0)\" is a directory, which would not be removed"
        })

        let outcome = try runTool(Self.tool, [dir, "000000010000000000000005"])
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines.sorted() == ["000000010000000000000001", "000000010000000000000003"].map {
            "walferry-cleanup: error: could not remove file \"\(dir)/\($0)\": Is a directory"
        })
        // Both files were removed although failures came before, after or between them.
        #expect(try listDirectory(dir) == ["000000010000000000000001", "000000010000000000000003", "000000010000000000000006"])
        #expect(try listDirectory(dir + "/000000010000000000000003") == ["inside"])
    }

    @Test func symbolicLinksAreRemovedNeverFollowed() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000005"], in: folder)
        let outside = try folder.makeDirectory("outside")
        try writeFile(outside + "/000000010000000000000001", [7])
        try folder.makeDirectory("outside/000000010000000000000002")
        try writeFile(outside + "/000000010000000000000002/keep", [7])
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: dir + "/000000010000000000000001", withDestinationPath: outside + "/000000010000000000000001")
        try fm.createSymbolicLink(atPath: dir + "/000000010000000000000002", withDestinationPath: outside + "/000000010000000000000002")
        try fm.createSymbolicLink(atPath: dir + "/000000010000000000000003", withDestinationPath: folder.join("missing"))

        let outcome = try runTool(Self.tool, [dir, "000000010000000000000004"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try listDirectory(dir) == ["000000010000000000000005"])
        #expect(try listDirectory(outside) == ["000000010000000000000001", "000000010000000000000002"])
        #expect(try listDirectory(outside + "/000000010000000000000002") == ["keep"])
    }

    @Test func aLocationReachedThroughASymbolicLinkIsCleaned() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000001", "000000010000000000000002"], in: folder)
        try FileManager.default.createSymbolicLink(atPath: folder.join("mnt"), withDestinationPath: dir)
        let outcome = try runTool(Self.tool, ["-n", folder.join("mnt"), "000000010000000000000002"])
        #expect(outcome.status == 0)
        #expect(outcome.stdoutLines == [folder.join("mnt") + "/000000010000000000000001"])
    }

    /// A folder the cleanup cannot write to: as root (CI), the tool runs as the postgres user against a
    /// root-owned folder; otherwise the folder is made read-only.
    @Test func permissionFailuresAreAllReportedAndNothingElseChanges() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"], in: folder)
        if !runningAsRoot { chmod(dir, 0o555) }
        defer { chmod(dir, 0o755) }
        let outcome = try runAsPostgresUser(postgresReachableToolDirectory + "/walferry-cleanup", [dir, "000000010000000000000003"])
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines.sorted() == ["000000010000000000000001", "000000010000000000000002"].map {
            "walferry-cleanup: error: could not remove file \"\(dir)/\($0)\": Permission denied"
        })
        #expect(try listDirectory(dir).count == 3)
    }

    @Test func anUnreadableLocationExits1() throws {
        let folder = try TemporaryDirectory()
        let dir = try Self.archive(["000000010000000000000001"], in: folder)
        chmod(dir, 0o333)
        defer { chmod(dir, 0o755) }
        if !runningAsRoot { chmod(dir, 0o333) }
        let outcome = try runAsPostgresUser(postgresReachableToolDirectory + "/walferry-cleanup", [dir, "000000010000000000000003"])
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines == ["walferry-cleanup: error: could not open archive location \"\(dir)\": Permission denied"])
        #expect(try listDirectory(dir) == ["000000010000000000000001"])
    }

    @Test func anUnreachableLocationExits2() throws {
        let folder = try TemporaryDirectory()
        let parent = try folder.makeDirectory("locked", mode: 0o700)
        let dir = try folder.makeDirectory("locked/archive")
        chmod(parent, 0o000)
        defer { chmod(parent, 0o755) }
        let outcome = try runAsPostgresUser(postgresReachableToolDirectory + "/walferry-cleanup", [dir, "000000010000000000000003"])
        #expect(outcome.status == 2)
        #expect(outcome.stderrLines == ["walferry-cleanup: error: could not access archive location \"\(dir)\": Permission denied"])
    }

    @Test func emptyArchiveAndAllZeroCutoff() throws {
        let folder = try TemporaryDirectory()
        let empty = try Self.archive([], in: folder, named: "empty")
        let outcome = try runTool(Self.tool, ["-n", empty, "000000010000000000000003"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "" && outcome.stderr == "")
        // %r is all zeros early in recovery: nothing sorts before it.
        let dir = try Self.archive(["000000010000000000000000", "000000010000000000000001"], in: folder)
        let zero = try runTool(Self.tool, [dir, "000000000000000000000000"])
        #expect(zero.status == 0)
        #expect(try listDirectory(dir).count == 2)
    }
}
