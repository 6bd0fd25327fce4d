// walferry-archive as archive_command runs it: in a data directory, `%p` relative to it, DEST in an
// archive folder. Every rule of the tool, with exact messages and exit statuses, on synthetic 1 MB
// segments (WALFixtures.swift); ArchiveClusterTests runs it under a real server.

import Foundation
import Testing
import TestSupport

@Suite struct ArchiveCLITests {
    static let tool = "walferry-archive"
    static let segment = "000000010000000000000003"

    /// A data directory holding `files` in pg_wal, and an empty archive folder beside it.
    struct Setup {
        let folder: TemporaryDirectory
        let data: String
        let archive: String

        init(_ files: [String: [UInt8]]) throws {
            folder = try TemporaryDirectory()
            data = try fakeDataDirectory(in: folder, files: files)
            archive = try folder.makeDirectory("archive")
        }

        func archive(_ name: String, as destination: String? = nil, _ extra: [String] = []) throws -> ProcessOutcome {
            try runTool(ArchiveCLITests.tool, extra + ["pg_wal/\(name)", "\(archive)/\(destination ?? name)"], workingDirectory: data)
        }

        func identityLine() -> String {
            "walferry-archive: created archive identity record \"\(archive)/walferry.identity\": system identifier \(testSystemIdentifier), PostgreSQL 15, 1 MB segments"
        }
    }

    static func wal(_ name: String = segment, seed: UInt64 = 1, sysid: UInt64 = testSystemIdentifier) -> [UInt8] {
        syntheticSegment(name: name, systemIdentifier: sysid, seed: seed)
    }

    @Test func version() throws {
        let outcome = try runTool(Self.tool, ["--version"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "walferry-archive (walferry) 0.1.0\n")
    }

    @Test func archivesDurablyWithTheSourcesModeAndAnIdentityRecord() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        let outcome = try setup.archive(Self.segment)
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines == [setup.identityLine()])
        #expect(try readFile(setup.archive + "/" + Self.segment) == Self.wal())
        #expect(fileMode(setup.archive + "/" + Self.segment) == 0o600)
        #expect(try listDirectory(setup.archive) == [Self.segment, "walferry.identity"])  // no temporary file left
        #expect(try String(decoding: readFile(setup.archive + "/walferry.identity"), as: UTF8.self) ==
                identityRecordText())
        #expect(try String(decoding: readFile(setup.data + "/walferry.archives"), as: UTF8.self) == setup.archive + "\n")

        // A second segment: silent, like cp.
        let next = "000000010000000000000004"
        try writeFile(setup.data + "/pg_wal/" + next, Self.wal(next, seed: 2))
        let second = try setup.archive(next, ["--mode", "0640", "--verify", "cache"])
        #expect(second.status == 0 && second.stderr == "" && second.stdout == "")
        #expect(fileMode(setup.archive + "/" + next) == 0o640)
    }

    @Test func reArchivingIdenticalContentsSucceedsInEitherForm() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        #expect(try setup.archive(Self.segment).status == 0)
        let again = try setup.archive(Self.segment)
        #expect(again.status == 0)
        #expect(again.stderrLines == ["walferry-archive: archive file \"\(setup.archive)/\(Self.segment)\" already exists with identical contents"])
        let compressed = try setup.archive(Self.segment, as: Self.segment + ".bz2")
        #expect(compressed.status == 0)
        #expect(compressed.stderrLines == ["walferry-archive: archive file \"\(setup.archive)/\(Self.segment).bz2\" already exists with identical contents (as \"\(setup.archive)/\(Self.segment)\")"])
        #expect(try listDirectory(setup.archive) == [Self.segment, "walferry.identity"])
    }

    @Test func differentContentsAreRefusedAndLeftAlone() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        #expect(try setup.archive(Self.segment).status == 0)
        // Past the segment's XLOG_SWITCH record, where the server reads nothing: still sound WAL.
        var changed = Self.wal()
        changed[212_345] ^= 0xFF
        try writeFile(setup.data + "/pg_wal/" + Self.segment, changed)
        for destination in [Self.segment, Self.segment + ".bz2"] {
            let outcome = try setup.archive(Self.segment, as: destination)
            #expect(outcome.status == 3)
            #expect(outcome.stderrLines == [
                "walferry-archive: error: archive file \"\(setup.archive)/\(Self.segment)\" already exists with different contents (first difference at byte 212345)",
                "walferry-archive: hint: The archived copy was left as it is. Is another cluster archiving to the same place?",
            ])
        }
        #expect(try readFile(setup.archive + "/" + Self.segment) == Self.wal())
        #expect(try listDirectory(setup.archive) == [Self.segment, "walferry.identity"])
    }

    @Test func compressesWithBzip2AndVerifies() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        let outcome = try setup.archive(Self.segment, as: Self.segment + ".bz2", ["-j", "2"])
        #expect(outcome.status == 0, "\(outcome)")
        let decompressed = try runProcess("/bin/sh", ["-c", "bzip2 -dc '\(setup.archive)/\(Self.segment).bz2' | cmp - '\(setup.data)/pg_wal/\(Self.segment)'"])
        #expect(decompressed.status == 0, "\(decompressed)")
        // The plain form of the same WAL is recognised as archived already.
        let plain = try setup.archive(Self.segment)
        #expect(plain.status == 0)
        #expect(plain.stderrLines == ["walferry-archive: archive file \"\(setup.archive)/\(Self.segment)\" already exists with identical contents (as \"\(setup.archive)/\(Self.segment).bz2\")"])
        // A corrupt archived .bz2 is a conflict, never replaced.
        var corrupt = try readFile(setup.archive + "/" + Self.segment + ".bz2")
        corrupt[corrupt.count / 2] ^= 0x10
        try writeFile(setup.archive + "/" + Self.segment + ".bz2", corrupt)
        let again = try setup.archive(Self.segment, as: Self.segment + ".bz2")
        #expect(again.status == 3)
        #expect(again.stderrLines.first?.hasPrefix("walferry-archive: error: archive file \"\(setup.archive)/\(Self.segment).bz2\" already exists and cannot be decompressed: compressed data is corrupt") == true)
    }

    @Test func historyBackupAndPartialFiles() throws {
        let history = Array("1\t0/130000C8\tno recovery target specified\n".utf8)
        let backup = Array("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n".utf8)
        let partial = "000000010000000000000013.partial"
        let setup = try Setup(["00000002.history": history, "000000010000000000000003.00000028.backup": backup,
                               partial: syntheticSegment(name: partial, systemIdentifier: testSystemIdentifier)])
        #expect(try setup.archive("00000002.history").status == 0)
        #expect(try setup.archive("000000010000000000000003.00000028.backup", as: "000000010000000000000003.00000028.backup.bz2").status == 0)
        #expect(try setup.archive(partial).status == 0)
        #expect(try readFile(setup.archive + "/00000002.history") == history)
        #expect(try listDirectory(setup.archive) == ["000000010000000000000003.00000028.backup.bz2", partial, "00000002.history", "walferry.identity"])

        try writeFile(setup.data + "/pg_wal/00000002.history", Array("1\t0/14000000\tother\n".utf8))
        let overwrite = try setup.archive("00000002.history")
        #expect(overwrite.status == 3)
        #expect(overwrite.stderrLines == [
            "walferry-archive: error: archive file \"\(setup.archive)/00000002.history\" already exists with different contents (first difference at byte 5)",
            "walferry-archive: hint: Timeline history files are never overwritten; is another cluster archiving here?",
        ])
        #expect(try readFile(setup.archive + "/00000002.history") == history)
    }

    struct BadSegment: Sendable, CustomTestStringConvertible {
        let label: String
        let name: String
        let bytes: [UInt8]
        let problem: String
        var testDescription: String { label }
    }

    static let badSegments: [BadSegment] = [
        BadSegment(label: "truncated", name: segment, bytes: Array(wal().prefix(8192)),
                   problem: "file is 8192 bytes, but its header declares 1048576-byte segments"),
        BadSegment(label: "too short", name: segment, bytes: Array(wal().prefix(20)), problem: "file is 20 bytes, too short for a WAL segment header"),
        BadSegment(label: "empty", name: segment, bytes: [], problem: "file is 0 bytes, too short for a WAL segment header"),
        BadSegment(label: "unknown magic", name: segment, bytes: syntheticSegment(name: segment, magic: 0xD121),
                   problem: "unknown WAL page magic 0xD121 (not PostgreSQL 9.6 to 18)"),
        BadSegment(label: "short header", name: segment, bytes: syntheticSegment(name: segment, info: 0x0005),
                   problem: "invalid info bits 0x5 in the first page header"),
        BadSegment(label: "wrong page address", name: "000000010000000000000004", bytes: syntheticSegment(name: segment),
                   problem: "page address 0/300000 in the header, but the file name says 0/400000"),
        BadSegment(label: "later timeline", name: segment, bytes: syntheticSegment(name: segment, headerTimeline: 2),
                   problem: "timeline 2 in the header, but the file name says timeline 1"),
        BadSegment(label: "zero system identifier", name: segment, bytes: syntheticSegment(name: segment, systemIdentifier: 0),
                   problem: "system identifier 0 in the page header"),
    ]

    @Test(arguments: badSegments)
    func unsoundSegmentsAreRefused(_ bad: BadSegment) throws {
        let setup = try Setup([bad.name: bad.bytes])
        let outcome = try setup.archive(bad.name)
        #expect(outcome.status == 4)
        #expect(outcome.stderrLines == ["walferry-archive: error: \"pg_wal/\(bad.name)\" is not a valid WAL segment: \(bad.problem)"])
        #expect(try listDirectory(setup.archive) == [])
    }

    /// A segment in pg_wal whose first page is sound, damaged later: the server could not replay it
    /// from the archive, so it is never archived.
    @Test(arguments: [(offset: 8192, problem: "invalid magic number D111 in WAL segment 000000010000000000000003, LSN 0/302000, offset 8192"),
                      (offset: 69, problem: "incorrect resource manager data checksum in record at 0/300028")])
    func aSegmentDamagedPastItsFirstPageIsRefused(_ damage: (offset: Int, problem: String)) throws {
        var bytes = Self.wal()
        bytes[damage.offset] ^= 0x01
        let setup = try Setup([Self.segment: bytes])
        for destination in [Self.segment, Self.segment + ".bz2"] {
            let outcome = try setup.archive(Self.segment, as: destination)
            #expect(outcome.status == 4)
            #expect(outcome.stderrLines == [
                "walferry-archive: error: \"pg_wal/\(Self.segment)\" is not a valid WAL segment: \(damage.problem)",
                "walferry-archive: hint: The file in pg_wal is damaged: the server could not replay it. Check the storage for I/O errors, and do not copy the file into the archive by hand.",
            ])
        }
        #expect(try listDirectory(setup.archive) == [])
    }

    @Test func theFirstSegmentOfANewTimelineCarriesTheOldTimeline() throws {
        let name = "000000020000000000000013"
        let setup = try Setup([name: syntheticSegment(name: name, systemIdentifier: testSystemIdentifier, headerTimeline: 1)])
        let outcome = try setup.archive(name)
        #expect(outcome.status == 0, "\(outcome)")
    }

    @Test func anotherClustersSegmentIsRefused() throws {
        let setup = try Setup([Self.segment: Self.wal(), "000000010000000000000004": Self.wal("000000010000000000000004", sysid: 42)])
        #expect(try setup.archive(Self.segment).status == 0)
        let outcome = try setup.archive("000000010000000000000004")
        #expect(outcome.status == 5)
        #expect(outcome.stderrLines == [
            "walferry-archive: error: WAL file \"pg_wal/000000010000000000000004\" (system identifier 42, PostgreSQL 15, 1 MB segments) does not belong in archive \"\(setup.archive)\" (system identifier \(testSystemIdentifier), PostgreSQL 15, 1 MB segments)",
            "walferry-archive: hint: Is archive_command pointing at another cluster's archive?",
        ])
        #expect(try listDirectory(setup.archive) == [Self.segment, "walferry.identity"])
    }

    @Test func anUnmountedArchiveIsNotFilled() throws {
        let setup = try Setup([Self.segment: Self.wal(), "000000010000000000000004": Self.wal("000000010000000000000004")])
        #expect(try setup.archive(Self.segment).status == 0)
        // The share goes away: the mount point is an empty local directory again.
        for name in try listDirectory(setup.archive) { try FileManager.default.removeItem(atPath: setup.archive + "/" + name) }
        let outcome = try setup.archive("000000010000000000000004")
        #expect(outcome.status == 5)
        #expect(outcome.stderrLines == [
            "walferry-archive: error: archive \"\(setup.archive)\" has no identity record \"walferry.identity\", but this cluster has archived to it before",
            "walferry-archive: hint: Is the archive file system mounted? To start a new archive there on purpose, remove \"\(setup.archive)\" from walferry.archives in the data directory.",
        ])
        #expect(try listDirectory(setup.archive) == [])
    }

    struct Usage: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let lines: [String]
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let tryHelp = "walferry-archive: hint: Try \"walferry-archive --help\" for more information."
    static let usages: [Usage] = [
        Usage(arguments: [], lines: ["walferry-archive: error: must specify the file to archive (SOURCE, %p)", tryHelp]),
        Usage(arguments: ["pg_wal/\(segment)"], lines: ["walferry-archive: error: must specify its path in the archive (DEST, /mnt/archive/%f)", tryHelp]),
        Usage(arguments: ["a", "b", "c"], lines: ["walferry-archive: error: too many command-line arguments", tryHelp]),
        Usage(arguments: ["--mode", "999", "a", "b"], lines: ["walferry-archive: error: invalid mode \"999\": give octal permission bits such as 0640", tryHelp]),
        Usage(arguments: ["-j", "0", "a", "b"], lines: ["walferry-archive: error: invalid number of jobs 0: must be between 1 and 256", tryHelp]),
        Usage(arguments: ["--verify", "disk", "a", "b"], lines: ["walferry-archive: error: the value 'disk' is invalid for '--verify <storage|cache>'. Please provide one of 'storage' and 'cache'.", tryHelp]),
        Usage(arguments: ["%f", "/mnt/archive/%f"], lines: [
            "walferry-archive: error: \"%f\" is not a WAL file name",
            "walferry-archive: hint: SOURCE is %p: the path of a segment, .partial, .backup or .history file under pg_wal."]),
        Usage(arguments: ["pg_wal/RECOVERYXLOG", "/mnt/archive/\(segment)"], lines: [
            "walferry-archive: error: \"pg_wal/RECOVERYXLOG\" is not a WAL file name",
            "walferry-archive: hint: \"RECOVERYXLOG\" is restore_command's %p; archive_command takes walferry-archive, restore_command walferry-restore."]),
        Usage(arguments: ["pg_wal/\(segment)", "/mnt/archive/\(segment).gz"], lines: [
            "walferry-archive: error: archive file name \"\(segment).gz\" does not match \"\(segment)\"",
            "walferry-archive: hint: walferry-archive compresses with bzip2 only: use %f.bz2."]),
        Usage(arguments: ["pg_wal/\(segment)", "/tmp"], lines: [
            "walferry-archive: error: archive file name \"tmp\" does not match \"\(segment)\"",
            "walferry-archive: hint: DEST is the archived file's path, not the archive directory: walferry-archive %p /mnt/archive/%f"]),
        Usage(arguments: ["pg_wal/\(segment)", "/mnt/archive/pg_wal/\(segment)x"], lines: [
            "walferry-archive: error: archive file name \"\(segment)x\" does not match \"\(segment)\"",
            "walferry-archive: hint: DEST ends with %f (the file name), not %p (its path under pg_wal)."]),
        Usage(arguments: ["pg_wal/\(segment)", "/mnt/archive/000000010000000000000004"], lines: [
            "walferry-archive: error: archive file name \"000000010000000000000004\" does not match \"\(segment)\"",
            "walferry-archive: hint: DEST must end with %f, or %f.bz2 to compress: walferry-archive %p /mnt/archive/%f"]),
    ]

    @Test(arguments: usages)
    func usageErrorsExit2(_ usage: Usage) throws {
        let outcome = try runTool(Self.tool, usage.arguments)
        #expect(outcome.status == 2)
        #expect(outcome.stderrLines == usage.lines)
    }

    @Test func missingSourceAndMissingArchive() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        let missing = try runTool(Self.tool, [Self.segment, setup.archive + "/" + Self.segment], workingDirectory: setup.data)
        #expect(missing.status == 1)
        #expect(missing.stderrLines == [
            "walferry-archive: error: could not open file \"\(Self.segment)\": No such file or directory",
            "walferry-archive: hint: SOURCE is %p (pg_wal/\(Self.segment)), not %f.",
        ])
        let noArchive = try setup.archive(Self.segment, as: "../nothere/" + Self.segment)
        #expect(noArchive.status == 1)
        #expect(noArchive.stderrLines == [
            "walferry-archive: error: could not open archive directory \"\(setup.archive)/../nothere\": No such file or directory",
            "walferry-archive: hint: Is the archive file system mounted?",
        ])
    }

    @Test func unreadableSourceAndReadOnlyArchive() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        try handToPostgresUser(setup.data)
        if runningAsRoot {
            // The archive stays root's: the postgres user cannot write into it.
            chmod(setup.archive, 0o755)
        } else {
            chmod(setup.archive, 0o555)
        }
        defer { chmod(setup.archive, 0o755) }
        let tool = postgresReachableToolDirectory + "/" + Self.tool
        let readOnly = try runAsPostgresUser(tool, ["pg_wal/" + Self.segment, setup.archive + "/" + Self.segment], workingDirectory: setup.data)
        #expect(readOnly.status == 1)
        #expect(readOnly.stderrLines == [
            "walferry-archive: error: could not create \"\(setup.archive)/.walferry.identity.walferry-tmp\": Permission denied",
            "walferry-archive: hint: The archive directory must be writable by the server's operating-system user.",
        ])
        chmod(setup.data + "/pg_wal/" + Self.segment, 0o000)
        chmod(setup.archive, 0o777)
        let unreadable = try runAsPostgresUser(tool, ["pg_wal/" + Self.segment, setup.archive + "/" + Self.segment], workingDirectory: setup.data)
        #expect(unreadable.status == 1)
        #expect(unreadable.stderrLines == ["walferry-archive: error: could not open file \"pg_wal/\(Self.segment)\": Permission denied"])
        #expect(try listDirectory(setup.archive) == [])
    }

    @Test func staleTemporaryFilesAreRemovedLiveOnesRespected() throws {
        let setup = try Setup([Self.segment: Self.wal()])
        #expect(try setup.archive(Self.segment).status == 0)  // the identity record exists from here on
        let next = "000000010000000000000004"
        try writeFile(setup.data + "/pg_wal/" + next, Self.wal(next, seed: 3))
        let temporary = setup.archive + "/." + next + ".walferry-tmp"
        try writeFile(temporary, Array(repeating: 0xAB, count: 1000))  // a writer that died: no lock held

        // A live writer holds the lock: left alone, and the run fails as busy.
        // Close-on-exec: a child that some other test spawns meanwhile must not inherit the lock.
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        #expect(flock(fd, LOCK_EX) == 0)
        let busy = try setup.archive(next)
        #expect(busy.status == 7)
        #expect(busy.stderrLines == [
            "walferry-archive: error: another process is writing \"\(temporary)\"",
            "walferry-archive: hint: Two archivers write the same file; is the same archive_command running on two servers?",
        ])
        #expect(entryExists(temporary))
        close(fd)

        let outcome = try setup.archive(next)
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try readFile(setup.archive + "/" + next) == Self.wal(next, seed: 3))
        #expect(!entryExists(temporary))
    }

    /// A small tmpfs: the copy fails with ENOSPC, exits 1, and leaves neither DEST nor a temporary file.
    @Test func aFullFileSystem() throws {
        guard runningAsRoot else {
            Issue.record("mounting a tmpfs needs root; CI runs as root")
            return
        }
        let setup = try Setup([Self.segment: Self.wal(), "000000010000000000000004": Self.wal("000000010000000000000004", seed: 4)])
        let mount = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=1536k", "tmpfs", setup.archive])
        #expect(mount.status == 0, "\(mount)")
        defer { _ = try? runProcess("/bin/umount", [setup.archive]) }
        #expect(try setup.archive(Self.segment).status == 0)
        let full = try setup.archive("000000010000000000000004")
        #expect(full.status == 1)
        #expect(full.stderrLines == ["walferry-archive: error: could not write file \"\(setup.archive)/.000000010000000000000004.walferry-tmp\": No space left on device"])
        #expect(try listDirectory(setup.archive) == [Self.segment, "walferry.identity"])
    }

    /// kill -9 at random moments of many runs: DEST is absent or complete, never partial, and a rerun
    /// succeeds. SIGTERM: the temporary file is removed and the exit status is 1, not a signal.
    @Test(arguments: [false, true])
    func interruptionsNeverLeaveAPartialFile(compressed: Bool) throws {
        let name = "000000010000000000000005"
        let bytes = syntheticSegment(name: name, systemIdentifier: testSystemIdentifier, segmentSize: 16 << 20, seed: 9)
        let setup = try Setup([name: bytes])
        let destination = compressed ? name + ".bz2" : name
        var generator = SystemRandomNumberGenerator()
        for round in 0..<12 {
            let useTerm = round % 3 == 2
            let temporary = setup.archive + "/." + destination + ".walferry-tmp"
            if useTerm { try? FileManager.default.removeItem(atPath: temporary) }  // what a SIGKILL round left
            let process = try RunningProcess(walferryTool(Self.tool), ["pg_wal/" + name, setup.archive + "/" + destination],
                                             workingDirectory: setup.data)
            if useTerm {
                // SIGTERM once the signal thread takes it (SigBlk in /proc). One that arrives in the first
                // milliseconds, before main() installs it, ends the process by the signal with nothing
                // written yet: the man page says so.
                let deadline = Date().addingTimeInterval(5)
                while !catchesSIGTERM(process.pid) && Date() < deadline { usleep(100) }
                usleep(UInt32.random(in: 0...(compressed ? 100_000 : 10_000), using: &generator))
            } else {
                usleep(UInt32.random(in: 0...(compressed ? 250_000 : 40_000), using: &generator))
            }
            process.signal(useTerm ? SIGTERM : SIGKILL)
            let outcome = try process.wait()
            if useTerm {
                #expect(!outcome.signaled, "SIGTERM must end in an exit status: \(outcome)")
                #expect([0, 1].contains(outcome.status), "\(outcome)")
                if outcome.status == 1 {
                    #expect(outcome.stderrLines.last == "walferry-archive: error: interrupted by signal 15 (SIGTERM)", "\(outcome)")
                }
                #expect(!entryExists(temporary))
            }
            let path = setup.archive + "/" + destination
            if entryExists(path) {
                let stored = try readFile(path)
                let contents = compressed ? try runProcess("/bin/sh", ["-c", "bzip2 -dc '\(path)'"]).stdoutBytes : stored
                #expect(sameBytes(contents, bytes), "round \(round): a partial or wrong file under the final name")
                try FileManager.default.removeItem(atPath: path)
            }
        }
        let rerun = try setup.archive(name, as: destination)
        #expect(rerun.status == 0, "\(rerun)")
        #expect(try listDirectory(setup.archive).filter { $0.hasPrefix(".") } == [])
    }

    /// Whether process `pid` takes SIGTERM itself: its main thread blocks it for the signal thread
    /// (bit 15 of SigBlk in /proc/PID/status), or it has a handler for it (SigCgt).
    func catchesSIGTERM(_ pid: pid_t) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return ["SigBlk:", "SigCgt:"].contains { field in
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
                  let mask = UInt64(line.dropFirst(field.count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
            return mask & (1 << (UInt64(SIGTERM) - 1)) != 0
        }
    }
}
