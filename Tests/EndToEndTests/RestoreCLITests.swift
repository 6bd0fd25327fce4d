// walferry-restore as the server meets it: every exit status in each mode, every message, and the
// file left at DEST (the complete, verified file or nothing, never a temporary file), on crafted
// archives of 1 MB segments. The same contract on real servers is in RestoreClusterTests, the spool
// in RestorePrefetchTests.

import Foundation
import Testing
import TestSupport

@Suite struct RestoreCLITests {
    static let program = "walferry-restore"
    static let pitrDetail = "walferry-restore: detail: Targeted recovery (--pitr): exit status %d, so that the server stops instead of ending recovery early."
    static let standbyDetail = "walferry-restore: detail: Standby mode (--standby): exit status 1, so that the server retries later, or streams meanwhile."

    static func pitr(_ status: Int32) -> String { String(format: pitrDetail, status) }

    // MARK: - Help and version

    @Test func helpIsPinned() throws {
        let outcome = try runTool(Self.program, ["--help"])
        #expect(outcome.status == 0)
        #expect(outcome.stderr == "")
        #expect(outcome.stdout.hasPrefix("OVERVIEW: Fetch a WAL file from the archive for the server, verified,\natomically.\n"))
        #expect(outcome.stdout.contains("  restore_command = 'walferry-restore --standby /mnt/archive/%f %p'\n"))
        #expect(outcome.stdout.contains("  restore_command = 'walferry-restore --pitr /mnt/archive/%f %p'\n"))
        #expect(outcome.stdout.contains("USAGE: walferry-restore [OPTION]... SOURCE DEST\n"))
        for option in ["--standby", "--pitr", "--partial", "--prefetch <N>", "--spool <DIR>", "-j, --jobs <jobs>", "-V, --version", "-h, --help"] {
            #expect(outcome.stdout.contains("  \(option) "), "\(option) missing from --help")
        }
        #expect(!outcome.stdout.contains("prefetch-worker"))
    }

    @Test(arguments: ["--version", "-V"])
    func version(_ flag: String) throws {
        let outcome = try runTool(Self.program, [flag])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "walferry-restore (walferry) 0.1.0\n")
        #expect(outcome.stderr == "")
    }

    // MARK: - Delivery

    @Test func restoresAPlainSegment() throws {
        let scene = try RestoreScene()
        let contents = try scene.archiveSegment(3)
        let outcome = try scene.restore(["--pitr", scene.source(WAL.name(3)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderr == "")
        #expect(try scene.read(scene.recoveryXLOG) == contents)
        #expect(try scene.pgWALContents() == ["RECOVERYXLOG"])
    }

    @Test func restoresACompressedSegmentFromEitherSourceForm() throws {
        let scene = try RestoreScene()
        let contents = try scene.archiveSegment(4, compressed: true)
        for source in [WAL.name(4), WAL.name(4) + ".bz2"] {
            try? FileManager.default.removeItem(atPath: scene.recoveryXLOG)
            let outcome = try scene.restore(["--standby", scene.source(source), "pg_wal/RECOVERYXLOG"])
            #expect(outcome.status == 0, "\(outcome)")
            #expect(outcome.stderr == "")
            #expect(try scene.read(scene.recoveryXLOG) == contents)
            #expect(try scene.pgWALContents() == ["RECOVERYXLOG"])
        }
        // And the plain form when SOURCE names the compressed one.
        let plain = try scene.archiveSegment(5)
        let outcome = try scene.restore(["--standby", scene.source(WAL.name(5) + ".bz2"), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try scene.read(scene.recoveryXLOG) == plain)
    }

    @Test func sourceDecidesWhichFormIsTriedFirst() throws {
        // A damaged plain copy next to a sound .bz2: SOURCE ending in .bz2 takes the sound one first;
        // plain SOURCE meets the damaged one and refuses it (never falling back past a bad file).
        let scene = try RestoreScene()
        let contents = try scene.archiveSegment(6, compressed: true)
        try scene.archiveSegment(6, bytes: Array(contents.prefix(4096)))
        let compressedFirst = try scene.restore(["--pitr", scene.source(WAL.name(6) + ".bz2"), "pg_wal/RECOVERYXLOG"])
        #expect(compressedFirst.status == 0, "\(compressedFirst)")
        #expect(try scene.read(scene.recoveryXLOG) == contents)
        try FileManager.default.removeItem(atPath: scene.recoveryXLOG)
        let plainFirst = try scene.restore(["--pitr", scene.source(WAL.name(6)), "pg_wal/RECOVERYXLOG"])
        #expect(plainFirst.status == 202)
        #expect(plainFirst.stderrLines.first == "walferry-restore: error: archive file \"\(scene.source(WAL.name(6)))\" is not a valid WAL segment \"\(WAL.name(6))\": file is 4096 bytes, but its header declares 1048576-byte segments")
        #expect(try scene.pgWALContents() == [])
    }

    @Test func replacesAnExistingDestination() throws {
        let scene = try RestoreScene()
        let contents = try scene.archiveSegment(7)
        try writeFile(scene.recoveryXLOG, Array("old".utf8))
        let outcome = try scene.restore(["--pitr", scene.source(WAL.name(7)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try scene.read(scene.recoveryXLOG) == contents)
    }

    @Test func restoresATimelineHistoryFile() throws {
        let scene = try RestoreScene()
        let history = Array("1\t0/130000C8\tno recovery target specified\n\n# a comment\n2\t0/15000000\tbefore 2000-01-01\n".utf8)
        try writeFile(scene.source("00000003.history"), history)
        let outcome = try scene.restore(["--pitr", scene.source("00000003.history"), "pg_wal/RECOVERYHISTORY"])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderr == "")
        #expect(try scene.read(scene.pgWAL + "/RECOVERYHISTORY") == history)
    }

    @Test(arguments: [
        ("1\t0/130000C8\tno recovery target", "file does not end with a newline (truncated?)"),
        ("", "file is empty"),
        ("1\t0/130000C8\n1\t0/140000C8\n", "line 2: timeline IDs must be in increasing sequence"),
        ("x\t0/130000C8\n", "line 1: expected a numeric timeline ID"),
        ("1\tnot-an-lsn\n", "line 1: expected a write-ahead log switchpoint location"),
        ("3\t0/130000C8\n", "timeline IDs must be less than the file's own timeline 3"),
        ("# only a comment\n", "file lists no parent timeline"),
    ])
    func refusesAnInvalidTimelineHistoryFile(_ text: String, _ problem: String) throws {
        let scene = try RestoreScene()
        try writeFile(scene.source("00000003.history"), Array(text.utf8))
        let outcome = try scene.restore(["--pitr", scene.source("00000003.history"), "pg_wal/RECOVERYHISTORY"])
        #expect(outcome.status == 202)
        #expect(outcome.stderrLines == [
            "walferry-restore: error: invalid timeline history file \"\(scene.source("00000003.history"))\": \(problem)",
            Self.pitr(202),
        ])
        #expect(try scene.pgWALContents() == [])
    }

    @Test func restoresToPgRewindsFinalPath() throws {
        // pg_rewind's %p is the final, absolute path, and its working directory is anything.
        let scene = try RestoreScene()
        let contents = try scene.archiveSegment(8)
        let destination = scene.pgWAL + "/" + WAL.name(8)
        let outcome = try runTool(Self.program, [scene.source(WAL.name(8)), destination], workingDirectory: "/")
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try scene.read(destination) == contents)
        #expect(try scene.pgWALContents() == [WAL.name(8)])
    }

    // MARK: - Not in the archive

    @Test(arguments: [["--pitr"], ["--standby"], []])
    func aMissingSegmentIsOneLineAndStatus1(_ mode: [String]) throws {
        let scene = try RestoreScene()
        try scene.archiveSegment(1)
        let outcome = try scene.restore(mode + [scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 1)
        #expect(outcome.stdout == "")
        #expect(outcome.stderrLines == ["walferry-restore: WAL file \"\(WAL.name(2))\" not found in archive \"\(scene.archive)\""])
        #expect(try scene.pgWALContents() == [])
    }

    @Test(arguments: [["--pitr"], ["--standby"], []])
    func aMissingHistoryFileIsSilentStatus1(_ mode: [String]) throws {
        let scene = try RestoreScene()
        let started = Date()
        let outcome = try scene.restore(mode + [scene.source("00000002.history"), "pg_wal/RECOVERYHISTORY"])
        #expect(outcome.status == 1)
        #expect(outcome.stdout == "" && outcome.stderr == "")
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(try scene.pgWALContents() == [])
    }

    @Test func partialFallbackIsOffByDefault() throws {
        let scene = try RestoreScene()
        let contents = WAL.segment(9)
        try writeFile(scene.source(WAL.name(9) + ".partial"), contents)
        let without = try scene.restore(["--pitr", scene.source(WAL.name(9)), "pg_wal/RECOVERYXLOG"])
        #expect(without.status == 1)
        #expect(try scene.pgWALContents() == [])

        let with = try scene.restore(["--pitr", "--partial", scene.source(WAL.name(9)), "pg_wal/RECOVERYXLOG"])
        #expect(with.status == 0, "\(with)")
        #expect(with.stderrLines == ["walferry-restore: restored \"\(WAL.name(9))\" from \"\(scene.source(WAL.name(9) + ".partial"))\""])
        #expect(try scene.read(scene.recoveryXLOG) == contents)
        // A .partial is verified like a segment.
        try FileManager.default.removeItem(atPath: scene.recoveryXLOG)
        try writeFile(scene.source(WAL.name(9) + ".partial"), WAL.segment(10))
        let wrong = try scene.restore(["--pitr", "--partial", scene.source(WAL.name(9)), "pg_wal/RECOVERYXLOG"])
        #expect(wrong.status == 202)
        #expect(try scene.pgWALContents() == [])
    }

    // MARK: - Failures, in each mode

    /// A failure case: how to set it up, and the error lines expected before the detail line.
    struct Failure: Sendable, CustomTestStringConvertible {
        let label: String
        let status: Int32
        let segment: UInt64
        let setUp: @Sendable (RestoreScene) throws -> Void
        let lines: @Sendable (RestoreScene) -> [String]
        var testDescription: String { label }
    }

    static let failures: [Failure] = [
        Failure(label: "missing archive directory", status: 201, segment: 2, setUp: { scene in
            try FileManager.default.removeItem(atPath: scene.archive)
        }, lines: { scene in [
            "walferry-restore: error: could not open archive directory \"\(scene.archive)\": No such file or directory",
            "hint",
            "walferry-restore: hint: Is the archive file system mounted? SOURCE is the archive directory followed by %f: walferry-restore /mnt/archive/%f %p",
        ] }),
        Failure(label: "missing identity record in a directory without WAL (an unmounted share)", status: 203, segment: 2, setUp: { scene in
            try FileManager.default.removeItem(atPath: scene.archive + "/walferry.identity")
            try writeFile(scene.archive + "/README", Array("not WAL\n".utf8))
        }, lines: { scene in [
            "walferry-restore: error: archive \"\(scene.archive)\" has no identity record \"walferry.identity\"",
            "hint",
            "walferry-restore: hint: Is the archive file system mounted? walferry-archive writes the record with the first segment it archives.",
        ] }),
        Failure(label: "invalid identity record", status: 203, segment: 2, setUp: { scene in
            // The record's first line alone.
            try writeFile(scene.archive + "/walferry.identity", Array((identityRecordText().prefix { $0 != "\n" } + "\n").utf8))
        }, lines: { scene in [
            "walferry-restore: error: invalid archive identity record \"\(scene.archive)/walferry.identity\"",
            "hint",
            "walferry-restore: hint: It is written by walferry-archive; if it was edited by hand, restore it from a copy.",
        ] }),
        Failure(label: "truncated segment", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, bytes: Array(WAL.segment(2).prefix(512 * 1024)))
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": file is 524288 bytes, but its header declares 1048576-byte segments",
            "hint",
            "walferry-restore: hint: The archived copy is damaged or misnamed; restore it from another copy of the archive.",
        ] }),
        Failure(label: "empty segment", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, bytes: [])
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": file is 0 bytes, too short for a WAL segment header",
            "hint",
            "walferry-restore: hint: The archived copy is damaged or misnamed; restore it from another copy of the archive.",
        ] }),
        Failure(label: "misnamed segment", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, bytes: WAL.segment(3))
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": page address 0/300000 in the header, but the file name says 0/200000",
            "hint",
            "walferry-restore: hint: The archived copy is damaged or misnamed; restore it from another copy of the archive.",
        ] }),
        // Sound first page, damaged later: the server would read the damage as the end of the WAL.
        Failure(label: "flipped byte in a later page header", status: 202, segment: 2, setUp: { scene in
            var bytes = WAL.segment(2)
            bytes[8192] ^= 0x01
            try scene.archiveSegment(2, bytes: bytes)
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": invalid magic number D111 in WAL segment \(WAL.name(2)), LSN 0/202000, offset 8192",
            "hint",
            "walferry-restore: hint: The archived copy is damaged or misnamed; restore it from another copy of the archive.",
        ] }),
        Failure(label: "flipped byte in a record's data", status: 202, segment: 2, setUp: { scene in
            var bytes = WAL.segment(2)
            bytes[69] ^= 0x01  // the first record is at 40: 24 bytes of header, then its data
            try scene.archiveSegment(2, bytes: bytes)
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": incorrect resource manager data checksum in record at 0/200028",
            "hint",
            "walferry-restore: hint: The archived copy is damaged or misnamed; restore it from another copy of the archive.",
        ] }),
        Failure(label: "timeline above the name's", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, bytes: WAL.segment(2, headerTimeline: 2))
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a valid WAL segment \"\(WAL.name(2))\": timeline 2 in the header, but the file name says timeline 1",
            "hint",
            "walferry-restore: hint: The archived copy is damaged or misnamed; restore it from another copy of the archive.",
        ] }),
        Failure(label: "segment of another cluster", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, bytes: WAL.segment(2, systemIdentifier: 42))
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" (system identifier 42, PostgreSQL 15, 1 MB segments) does not belong in archive \"\(scene.archive)\" (system identifier \(testSystemIdentifier), PostgreSQL 15, 1 MB segments)",
            "hint",
            "walferry-restore: hint: Was it copied into the archive by hand, from another cluster?",
        ] }),
        Failure(label: "corrupt .bz2", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, compressed: true)
            try corruptByte(scene.source(WAL.name(2) + ".bz2"), at: 200)
        }, lines: { scene in [
            "walferry-restore: error: could not decompress file \"\(scene.source(WAL.name(2) + ".bz2"))\": compressed data is corrupt (CRC mismatch or invalid block)",
            "hint",
            "walferry-restore: hint: The archived copy is damaged; restore it from another copy of the archive.",
        ] }),
        Failure(label: "truncated .bz2", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, compressed: true)
            let path = scene.source(WAL.name(2) + ".bz2")
            try writeFile(path, Array(try scene.read(path).dropLast(10)))
        }, lines: { scene in [
            "walferry-restore: error: could not decompress file \"\(scene.source(WAL.name(2) + ".bz2"))\": compressed data is truncated",
            "hint",
            "walferry-restore: hint: The archived copy is damaged; restore it from another copy of the archive.",
        ] }),
        Failure(label: ".bz2 with trailing garbage", status: 202, segment: 2, setUp: { scene in
            try scene.archiveSegment(2, compressed: true)
            let path = scene.source(WAL.name(2) + ".bz2")
            try writeFile(path, try scene.read(path) + Array("garbage".utf8))
        }, lines: { scene in [
            "walferry-restore: error: could not decompress file \"\(scene.source(WAL.name(2) + ".bz2"))\": trailing garbage after the compressed data",
            "hint",
            "walferry-restore: hint: The archived copy is damaged; restore it from another copy of the archive.",
        ] }),
        Failure(label: "symbolic link in the archive", status: 201, segment: 2, setUp: { scene in
            try scene.archiveSegment(3)
            try FileManager.default.createSymbolicLink(atPath: scene.source(WAL.name(2)), withDestinationPath: scene.source(WAL.name(3)))
        }, lines: { scene in [
            "walferry-restore: error: could not open file \"\(scene.source(WAL.name(2)))\": Too many levels of symbolic links",
            "hint",
            "walferry-restore: hint: walferry-restore does not follow symbolic links in the archive.",
        ] }),
        Failure(label: "directory in place of a segment", status: 202, segment: 2, setUp: { scene in
            try scene.folder.makeDirectory("archive/" + WAL.name(2))
        }, lines: { scene in [
            "walferry-restore: error: archive file \"\(scene.source(WAL.name(2)))\" is not a regular file",
            "hint",
        ] }),
        Failure(label: "another cluster's data directory", status: 203, segment: 2, setUp: { scene in
            try scene.archiveSegment(2)
            try scene.folder.makeDirectory("data/global")
            try writeFile(scene.data + "/PG_VERSION", Array("15\n".utf8))
            var control = [UInt8](repeating: 0, count: 8192)
            withUnsafeBytes(of: UInt64(99).littleEndian) { control.replaceSubrange(0..<8, with: $0) }
            try writeFile(scene.data + "/global/pg_control", control)
        }, lines: { scene in [
            "walferry-restore: error: archive \"\(scene.archive)\" holds WAL of system identifier \(testSystemIdentifier), but this data directory's is 99",
            "hint",
            "walferry-restore: hint: Is restore_command pointing at another cluster's archive?",
        ] }),
    ]

    /// The expected lines, with the detail line (which depends on the mode) at "hint"'s place.
    static func expected(_ failure: Failure, _ scene: RestoreScene, detail: String) -> [String] {
        failure.lines(scene).map { $0 == "hint" ? detail : $0 }
    }

    @Test(arguments: failures)
    func inTargetedRecoveryEveryFailureIsFatal(_ failure: Failure) throws {
        let scene = try RestoreScene()
        try failure.setUp(scene)
        let outcome = try scene.restore(["--pitr", scene.source(WAL.name(failure.segment)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == failure.status)
        #expect(!outcome.signaled)
        #expect(outcome.stderrLines == Self.expected(failure, scene, detail: Self.pitr(failure.status)))
        #expect(try scene.pgWALContents() == [])
    }

    @Test(arguments: failures)
    func onAStandbyEveryFailureIsStatus1(_ failure: Failure) throws {
        let scene = try RestoreScene()
        try failure.setUp(scene)
        let outcome = try scene.restore(["--standby", scene.source(WAL.name(failure.segment)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines == Self.expected(failure, scene, detail: Self.standbyDetail))
        #expect(try scene.pgWALContents() == [])
    }

    @Test func anUnreadableFileIsAnErrorNotAMiss() throws {
        // As the postgres user, since root reads anything.
        let scene = try RestoreScene()
        try scene.archiveSegment(2)
        chmod(scene.source(WAL.name(2)), 0)
        try handToPostgresUser(scene.pgWAL)
        let tool = postgresReachableToolDirectory + "/walferry-restore"
        let pitr = try runAsPostgresUser(tool, ["--pitr", scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"], workingDirectory: scene.data)
        #expect(pitr.status == 201)
        #expect(pitr.stderrLines == [
            "walferry-restore: error: could not open file \"\(scene.source(WAL.name(2)))\": Permission denied",
            Self.pitr(201),
        ])
        let standby = try runAsPostgresUser(tool, ["--standby", scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"], workingDirectory: scene.data)
        #expect(standby.status == 1)
        #expect(standby.stderrLines.last == Self.standbyDetail)
        #expect(try scene.pgWALContents() == [])
    }

    // MARK: - The mode

    @Test(arguments: [
        ([String](), ["standby.signal"], 1, "Standby mode (standby.signal)"),
        ([], ["recovery.signal"], 203, "Targeted recovery (recovery.signal)"),
        ([], ["recovery.signal", "standby.signal"], 1, "Standby mode (standby.signal)"),
        ([], [], 203, "Targeted recovery (no standby.signal or recovery.signal in the working directory)"),
        ([], ["recovery.conf:standby_mode = 'on'  # comment"], 1, "Standby mode (recovery.conf with standby_mode on)"),
        ([], ["recovery.conf:standby_mode = off"], 203, "Targeted recovery (recovery.conf)"),
        (["--pitr"], ["standby.signal"], 203, "Targeted recovery (--pitr)"),
        (["--standby"], ["recovery.signal"], 1, "Standby mode (--standby)"),
    ])
    func modeComesFromTheFlagOrTheSignalFiles(_ flags: [String], _ files: [String], _ status: Int32, _ mode: String) throws {
        let scene = try RestoreScene()
        try FileManager.default.removeItem(atPath: scene.archive + "/walferry.identity")  // any failure will do: 203
        for file in files {
            let parts = file.split(separator: ":", maxSplits: 1).map(String.init)
            try writeFile(scene.data + "/" + parts[0], Array((parts.count > 1 ? parts[1] + "\n" : "").utf8))
        }
        let outcome = try scene.restore(flags + [scene.source(WAL.name(2)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == status)
        let detail = status == 1
            ? "walferry-restore: detail: \(mode): exit status 1, so that the server retries later, or streams meanwhile."
            : "walferry-restore: detail: \(mode): exit status 203, so that the server stops instead of ending recovery early."
        #expect(outcome.stderrLines.dropFirst().first == detail, "\(outcome)")
        // A clean miss is 1 in every mode.
        try writeFile(scene.archive + "/walferry.identity", Array(identityRecordText().utf8))
        let miss = try scene.restore(flags + [scene.source("00000002.history"), "pg_wal/RECOVERYHISTORY"])
        #expect(miss.status == 1 && miss.stderr == "")
    }

    // MARK: - Usage errors

    struct UsageError: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let lines: [String]
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let tryHelp = "walferry-restore: hint: Try \"walferry-restore --help\" for more information."

    static let usageErrors: [UsageError] = [
        UsageError(arguments: [], lines: ["walferry-restore: error: must specify the file to restore (SOURCE, /mnt/archive/%f)", tryHelp]),
        UsageError(arguments: ["/mnt/archive/000000010000000000000001"],
                   lines: ["walferry-restore: error: must specify where to restore it (DEST, %p)", tryHelp]),
        UsageError(arguments: ["/mnt/archive/000000010000000000000001", "pg_wal/RECOVERYXLOG", "extra"],
                   lines: ["walferry-restore: error: too many command-line arguments", tryHelp]),
        UsageError(arguments: ["--standby", "--pitr", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: --standby and --pitr cannot be used together", tryHelp]),
        UsageError(arguments: ["--prefetch", "0", "--spool", "/tmp/s", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: invalid number of segments to prefetch 0: must be between 1 and 64", tryHelp]),
        UsageError(arguments: ["--prefetch", "4", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: --prefetch needs --spool DIR", tryHelp]),
        UsageError(arguments: ["--spool", "/tmp/s", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: --spool needs --prefetch N", tryHelp]),
        UsageError(arguments: ["--prefetch", "4", "--spool", "spool", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: the prefetch spool \"spool\" must be an absolute path", tryHelp]),
        UsageError(arguments: ["-j", "0", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: invalid number of jobs 0: must be between 1 and 256", tryHelp]),
        UsageError(arguments: ["--frobnicate", "/a/000000010000000000000001", "pg_wal/RECOVERYXLOG"],
                   lines: ["walferry-restore: error: unknown option '--frobnicate'", tryHelp]),
    ]

    @Test(arguments: usageErrors)
    func usageErrorsAreFatalInTargetedRecovery(_ error: UsageError) throws {
        let scene = try RestoreScene()
        let outcome = try scene.restore(error.arguments)
        #expect(outcome.status == 200)
        #expect(outcome.stdout == "")
        #expect(outcome.stderrLines == error.lines)
    }

    @Test func usageErrorsAreStatus1OnAStandby() throws {
        let scene = try RestoreScene()
        let flagged = try scene.restore(["--standby", "--prefetch", "0", "--spool", "/tmp/s", scene.source(WAL.name(1)), "pg_wal/RECOVERYXLOG"])
        #expect(flagged.status == 1)
        try writeFile(scene.data + "/standby.signal", [])
        let signalled = try scene.restore([scene.source(WAL.name(1))])
        #expect(signalled.status == 1)
        #expect(signalled.stderrLines == ["walferry-restore: error: must specify where to restore it (DEST, %p)", Self.tryHelp])
    }

    @Test func likelyMistakesGetHints() throws {
        let scene = try RestoreScene()
        try scene.archiveSegment(1)
        try writeFile(scene.data + "/PG_VERSION", Array("15\n".utf8))
        try scene.folder.makeDirectory("data/global")
        try writeFile(scene.data + "/global/pg_control", [])  // a data directory (no system identifier to compare)
        let seg = WAL.name(1)
        let cases: [([String], [String])] = [
            // %p and %f swapped
            (["pg_wal/RECOVERYXLOG", scene.source(seg)], [
                "walferry-restore: error: \"pg_wal/RECOVERYXLOG\" is not the archive path of a WAL file",
                "hint:SOURCE and DEST are swapped: restore_command = 'walferry-restore /mnt/archive/%f %p'",
            ]),
            // %f missing from SOURCE
            ([scene.archive, "pg_wal/RECOVERYXLOG"], [
                "walferry-restore: error: \"\(scene.archive)\" is not the archive path of a WAL file",
                "hint:SOURCE is the archive directory followed by %f: restore_command = 'walferry-restore /mnt/archive/%f %p'",
            ]),
            (["/mnt/archive/\(seg).gz", "pg_wal/RECOVERYXLOG"], [
                "walferry-restore: error: \"/mnt/archive/\(seg).gz\" is not the archive path of a WAL file",
                "hint:walferry-restore reads bzip2 files only, not .gz.",
            ]),
            (["/mnt/archive/notes.txt", "pg_wal/RECOVERYXLOG"], [
                "walferry-restore: error: \"/mnt/archive/notes.txt\" is not the archive path of a WAL file",
                "hint:SOURCE is the archive path of %f: restore_command = 'walferry-restore /mnt/archive/%f %p'",
            ]),
            // DEST a directory
            ([scene.source(seg), "pg_wal"], [
                "walferry-restore: error: \"pg_wal\" is a directory",
                "hint:DEST is %p: restore_command = 'walferry-restore /mnt/archive/%f %p'",
            ]),
            // DEST named after another file
            ([scene.source(seg), "pg_wal/" + WAL.name(2)], [
                "walferry-restore: error: \"pg_wal/\(WAL.name(2))\" is neither the server's %p (RECOVERYXLOG, RECOVERYHISTORY) nor a path ending in \"\(seg)\"",
                "hint:DEST is named after another file than SOURCE; DEST is %p: restore_command = 'walferry-restore /mnt/archive/%f %p'",
            ]),
            // pg_wal/%f instead of %p
            ([scene.source(seg), "pg_wal/" + seg], [
                "walferry-restore: error: \"pg_wal/\(seg)\" is not where the server reads the restored file",
                "hint:DEST is %p (pg_wal/RECOVERYXLOG), not pg_wal/%f: restore_command = 'walferry-restore /mnt/archive/%f %p'",
            ]),
        ]
        for (arguments, lines) in cases {
            let outcome = try scene.restore(["--pitr"] + arguments)
            #expect(outcome.status == 200, "\(arguments)")
            let expected = [lines[0], Self.pitr(200), "walferry-restore: hint: " + lines[1].dropFirst(5)]
            #expect(outcome.stderrLines == expected, "\(arguments)")
            #expect(try scene.pgWALContents() == [])
        }
    }

    // MARK: - Signals

    /// A scene whose segment 2 is 8 MB of random bytes in one bzip2 stream: about half a second to
    /// decompress, on one thread whatever -j says. (bzip2, not lbzip2: lbzip2 hangs when started from
    /// the test runner.)
    static func slowScene() throws -> RestoreScene {
        let scene = try RestoreScene(identity: false)
        try writeFile(scene.archive + "/walferry.identity", Array(identityRecordText(segmentSize: 8 << 20).utf8))
        let path = scene.source(slowName)
        try writeFile(path, syntheticSegment(name: slowName, segmentSize: 8 << 20, incompressible: true))
        let outcome = try runProcess("/usr/bin/env", ["bzip2", "-9", path])
        guard outcome.status == 0 else { throw TestFailure("bzip2 failed: \(outcome)") }
        return scene
    }

    static let slowName = String(format: "%08X%08X%08X", 1, 0, 2)

    @Test(arguments: [SIGTERM, SIGKILL])
    func aSignalDuringDecompressionLeavesNoDestination(_ signal: Int32) throws {
        let scene = try Self.slowScene()
        let temporary = scene.pgWAL + "/.RECOVERYXLOG.walferry-tmp"
        let process = try RunningProcess(walferryTool(Self.program), ["--pitr", "-j", "1", scene.source(Self.slowName), "pg_wal/RECOVERYXLOG"],
                                         workingDirectory: scene.data)
        try waitUntil("the temporary file has data", timeout: 30) {
            var info = stat()
            return stat(temporary, &info) == 0 && info.st_size > 0
        }
        process.signal(signal)
        let ended = try process.wait()
        #expect(ended.signaled && ended.status == signal, "\(ended)")
        #expect(!entryExists(scene.recoveryXLOG))
        if signal == SIGTERM {
            #expect(ended.stderrLines == ["walferry-restore: error: interrupted by signal 15 (SIGTERM)"])
            #expect(try scene.pgWALContents() == [])
        } else {
            // Nothing can clean up after SIGKILL; the next run removes the leftover and delivers.
            #expect(try scene.pgWALContents() == [".RECOVERYXLOG.walferry-tmp"])
            let again = try scene.restore(["--pitr", scene.source(Self.slowName), "pg_wal/RECOVERYXLOG"])
            #expect(again.status == 0, "\(again)")
            #expect(try scene.pgWALContents() == ["RECOVERYXLOG"])
        }
    }
}
