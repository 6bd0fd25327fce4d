// Every tool on a file system that fails: walferry-archive (plain and .bz2) and walferry-cleanup with
// the archive on faultfs (TestSupport's FaultFileSystem), walferry-restore with its source there, in
// both recovery modes. Each case sets one fault, runs the tool, and asserts the exit status its
// --help documents, the message where it is stable, that the fault fired, that no final name holds a
// partial or corrupt file (every file in the archive is hashed against its source), and that the
// same run succeeds once the fault is cleared.
//
// Like ArchiveCLITests' full-tmpfs case and RestoreCLITests, except that the failures come from the
// file system itself, at the moment a real one fails: a write at a given byte, an fsync, a stat.

import Foundation
import Testing
import TestSupport

/// A data directory whose pg_wal holds segments 1 to 6 (1 MB, WAL.segment), and an archive folder on
/// a fault-injecting file system that already holds segment 1 and the identity record.
final class FaultScene: @unchecked Sendable {
    // @unchecked: used by the one test that made it.
    let folder: TemporaryDirectory
    let faults: FaultFileSystem
    let data: String
    /// The archive, through the faults.
    let archive: String
    /// The same folder past the faults, where the test reads what was really stored.
    let stored: String

    init() throws {
        folder = try TemporaryDirectory(prefix: "walferry-faults")
        faults = try FaultFileSystem()
        var files: [String: [UInt8]] = [:]
        for number in UInt64(1)...6 { files[WAL.name(number)] = WAL.segment(number) }
        data = try fakeDataDirectory(in: folder, files: files)
        try FileManager.default.createDirectory(atPath: faults.join("archive"), withIntermediateDirectories: false)
        archive = faults.join("archive")
        stored = faults.backing + "/archive"
        let first = try archiveSegment(1)
        guard first.status == 0 else { throw TestFailure("archiving segment 1 without faults failed: \(first)") }
    }

    /// Runs walferry-archive on segment `number`, plain or compressed.
    func archiveSegment(_ number: UInt64, compressed: Bool = false, _ extra: [String] = []) throws -> ProcessOutcome {
        let name = WAL.name(number)
        return try runTool("walferry-archive", extra + ["pg_wal/" + name, archive + "/" + name + (compressed ? ".bz2" : "")], workingDirectory: data)
    }

    /// Starts walferry-archive on segment `number` without waiting for it.
    func startArchiving(_ number: UInt64, compressed: Bool = false) throws -> RunningProcess {
        let name = WAL.name(number)
        return try RunningProcess(walferryTool("walferry-archive"), ["pg_wal/" + name, archive + "/" + name + (compressed ? ".bz2" : "")],
                                  workingDirectory: data)
    }

    /// The temporary name walferry-archive writes `file` under.
    static func temporary(_ file: String) -> String { "." + file + ".walferry-tmp" }

    /// Fails the test unless the stored archive holds exactly `names` (and the identity record), each
    /// with the bytes of its source in pg_wal, decompressed for `.bz2`: nothing partial or corrupt under
    /// a final name, no temporary file left.
    func expectArchive(_ names: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let listing = try listDirectory(stored)
        #expect(listing == (names + ["walferry.identity"]).sorted(), sourceLocation: sourceLocation)
        #expect(try readFile(stored + "/walferry.identity") == Array(identityRecordText().utf8), sourceLocation: sourceLocation)
        // Every WAL file holds its source's bytes (the publication lock and note are not WAL).
        for name in listing where !name.hasPrefix(".") && name != "walferry.identity" {
            let plain = name.hasSuffix(".bz2") ? String(name.dropLast(4)) : name
            let expected = try fileDigest(data + "/pg_wal/" + plain)
            #expect(try storedDigest(name) == expected, "\(name) does not hold \(plain)'s bytes", sourceLocation: sourceLocation)
        }
    }

    /// The SHA-256 of a stored archive file's contents (decompressed for `.bz2`).
    func storedDigest(_ name: String) throws -> String {
        let path = stored + "/" + name
        let command = name.hasSuffix(".bz2") ? "bzip2 -dc '\(path)' | sha256sum" : "sha256sum < '\(path)'"
        let outcome = try runProcess("/bin/bash", ["-c", "set -o pipefail; " + command])
        return outcome.status == 0 ? String(outcome.stdout.prefix(64)) : "unreadable: \(outcome)"
    }
}

/// strerror's text for an errno name, as the tools print it.
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

@Suite(.serialized) struct FaultTests {
    // MARK: - walferry-archive

    struct ArchiveCase: Sendable, CustomTestStringConvertible {
        let label: String
        let faults: [Fault]
        let compressed: Bool
        let status: Int32
        /// The expected standard error, `ARCHIVE` standing for the archive path and `TEMP` for the
        /// temporary file's name; nil where it is not stable.
        let stderr: [String]?
        var testDescription: String { label + (compressed ? " (.bz2)" : "") }
    }

    static let segment = WAL.name(3)
    static let temporary = FaultScene.temporary(segment)
    static let temporaryBZ2 = FaultScene.temporary(segment + ".bz2")

    static let archiveCases: [ArchiveCase] = [false, true].flatMap { compressed -> [ArchiveCase] in
        let temp = compressed ? temporaryBZ2 : temporary
        let prefix = "walferry-archive: error: "
        // A compressed segment is about 66 kB (64 kB of random bytes, then blanks).
        let at = compressed ? 30_000 : 300_000
        return [
            ArchiveCase(label: "EIO on write", faults: [.error("EIO", on: "write", name: temp, offset: at)], compressed: compressed,
                        status: 1, stderr: compressed ? nil : [prefix + "could not write file \"ARCHIVE/TEMP\": \(errnoText(EIO))"]),
            ArchiveCase(label: "ENOSPC on write", faults: [.error("ENOSPC", on: "write", name: temp, offset: at)], compressed: compressed,
                        status: 1, stderr: compressed ? nil : [prefix + "could not write file \"ARCHIVE/TEMP\": \(errnoText(ENOSPC))"]),
            ArchiveCase(label: "EIO on fsync", faults: [.error("EIO", on: "fsync", name: temp)], compressed: compressed,
                        status: 1, stderr: [prefix + "could not fsync file \"ARCHIVE/TEMP\": \(errnoText(EIO))"]),
            ArchiveCase(label: "ESTALE on the read-back's open", faults: [.error("ESTALE", on: "open", name: temp)], compressed: compressed,
                        status: 1, stderr: [prefix + "could not open file \"ARCHIVE/TEMP\": \(errnoText(ESTALE))"]),
            ArchiveCase(label: "ESTALE on the read-back's read", faults: [.error("ESTALE", on: "read", name: temp)], compressed: compressed,
                        status: compressed ? 6 : 1, stderr: nil),
            ArchiveCase(label: "ESTALE on stat of the final name", faults: [.error("ESTALE", on: "getattr", name: segment + "*")], compressed: compressed,
                        status: 1, stderr: nil),
            ArchiveCase(label: "short writes", faults: [.shortWrites(name: temp)], compressed: compressed, status: 0, stderr: []),
            ArchiveCase(label: "a lost write", faults: [.lostWrites(name: temp, offset: at, times: 1)], compressed: compressed,
                        status: 6, stderr: nil),
            ArchiveCase(label: "a byte flipped on write", faults: [.flip(on: "write", name: temp, offset: at)], compressed: compressed,
                        status: 6, stderr: compressed ? nil : [prefix + "verification of file \"ARCHIVE/TEMP\" failed: the copy read back differs from the source at byte 300000"]),
            ArchiveCase(label: "a byte flipped on the read-back", faults: [.flip(on: "read", name: temp, offset: at)], compressed: compressed,
                        status: 6, stderr: compressed ? nil : [prefix + "verification of file \"ARCHIVE/TEMP\" failed: the copy read back differs from the source at byte 300000"]),
        ]
    }

    @Test(arguments: archiveCases)
    func archiveHoldsEveryFault(_ test: ArchiveCase) throws {
        let scene = try FaultScene()
        let destination = Self.segment + (test.compressed ? ".bz2" : "")
        try scene.faults.setFaults(test.faults)
        let outcome = try scene.archiveSegment(3, compressed: test.compressed)
        let fired = try scene.faults.takeFired()
        #expect(!fired.isEmpty, "the fault never fired")
        #expect(outcome.status == test.status && !outcome.signaled, "\(outcome)")
        if let stderr = test.stderr {
            let temp = test.compressed ? Self.temporaryBZ2 : Self.temporary
            #expect(outcome.stderrLines == stderr.map {
                $0.replacingOccurrences(of: "ARCHIVE", with: scene.archive).replacingOccurrences(of: "TEMP", with: temp)
            })
        } else if test.status != 0 {
            #expect(outcome.stderrLines.first?.hasPrefix("walferry-archive: error: ") == true, "\(outcome)")
        }
        try scene.expectArchive(test.status == 0 ? [WAL.name(1), destination] : [WAL.name(1)])

        try scene.faults.clearFaults()
        let retry = try scene.archiveSegment(3, compressed: test.compressed)
        #expect(retry.status == 0, "\(retry)")
        try scene.expectArchive([WAL.name(1), destination])
    }

    /// A failed directory fsync comes after the link: the file is complete under its final name, the
    /// run fails (the entry may not be durable), the message names the directory, and the retry finds
    /// the file archived with identical contents and syncs the directory again.
    @Test(arguments: [false, true])
    func aFailedDirectoryFsyncNamesTheDirectory(compressed: Bool) throws {
        let scene = try FaultScene()
        let destination = Self.segment + (compressed ? ".bz2" : "")
        try scene.faults.setFaults([.error("EIO", on: "fsyncdir", name: "archive")])
        let outcome = try scene.archiveSegment(3, compressed: compressed)
        #expect(try scene.faults.takeFired() == ["fsyncdir EIO /archive"])
        #expect(outcome.status == 1, "\(outcome)")
        #expect(outcome.stderrLines.count == 1, "\(outcome)")
        let line = outcome.stderrLines.first ?? ""
        #expect(line.hasPrefix("walferry-archive: error: could not ") && line.hasSuffix(": \(errnoText(EIO))"), "\(line)")
        #expect(line.contains("\"\(scene.archive)\""), "the message must name the directory: \(line)")
        #expect(!line.contains("walferry-tmp"), "the message names the temporary file: \(line)")
        try scene.expectArchive([WAL.name(1), destination])

        try scene.faults.clearFaults()
        let retry = try scene.archiveSegment(3, compressed: compressed)
        #expect(retry.status == 0, "\(retry)")
        #expect(retry.stderrLines == ["walferry-archive: archive file \"\(scene.archive)/\(destination)\" already exists with identical contents"])
        try scene.expectArchive([WAL.name(1), destination])
    }

    /// A share that refuses link(2) with EPERM while rename works (CIFS, some NAS and FUSE file
    /// systems). faultfs.py's FUSE library has no RENAME2, so the kernel refuses
    /// renameat2(RENAME_NOREPLACE) there with EINVAL: walferry-archive falls back to lock, check and
    /// rename, says once which publication the archive got, and never replaces an existing file.
    @Test(arguments: [false, true])
    func aShareThatRefusesLinkIsStillArchivedTo(compressed: Bool) throws {
        let scene = try FaultScene()
        try scene.faults.setFaults([.error("EPERM", on: "link")])
        let outcome = try scene.archiveSegment(3, compressed: compressed)
        #expect(outcome.status == 0, "\(outcome)")
        #expect(outcome.stderrLines.count == 1, "one line naming the publication: \(outcome)")
        #expect(outcome.stderrLines.first?.hasPrefix("walferry-archive: ") == true && outcome.stderrLines.first?.contains("rename") == true,
                "\(outcome)")
        #expect(outcome.stderrLines.first == "walferry-archive: the file system of archive \"\(scene.archive)\" refuses link(2): files are published with a locked check and rename(2)")
        let destination = Self.segment + (compressed ? ".bz2" : "")
        // The lock every publisher takes, and the archive's note of how its files are published.
        let kept = [".walferry-publication", ".walferry-publish.lock"]
        try scene.expectArchive([WAL.name(1), destination] + kept)
        #expect(try readFile(scene.stored + "/.walferry-publication") == Array("published with a locked check and rename(2)\n".utf8))
        #expect(try scene.faults.takeFired().contains { $0.hasPrefix("link EPERM ") })

        // The next segment the same way; then an existing file of other contents is never replaced.
        let next = try scene.archiveSegment(4, compressed: compressed)
        #expect(next.status == 0 && next.stderr == "", "said once only: \(next)")
        let fifth = WAL.name(5) + (compressed ? ".bz2" : "")
        try writeFile(scene.stored + "/" + fifth, Array("not this segment".utf8))
        let conflict = try scene.archiveSegment(5, compressed: compressed)
        #expect(conflict.status == 3, "\(conflict)")
        #expect(try readFile(scene.stored + "/" + fifth) == Array("not this segment".utf8))
        try FileManager.default.removeItem(atPath: scene.stored + "/" + fifth)
        try scene.expectArchive([WAL.name(1), destination, WAL.name(4) + (compressed ? ".bz2" : "")] + kept)
    }

    /// SIGTERM while the read-back hangs (a stalled NFS server): the run ends within a second, exit 1
    /// with one line saying it was interrupted, its temporary file removed.
    @Test(arguments: [false, true])
    func archiveEndsPromptlyOnSIGTERMDuringAHungRead(compressed: Bool) throws {
        let scene = try FaultScene()
        let temp = FaultScene.temporary(Self.segment + (compressed ? ".bz2" : ""))
        try scene.faults.setFaults([.hang(on: "read", name: temp)])
        defer { try? scene.faults.clearFaults() }  // a run that outlives the deadline is released, then killed
        let run = try scene.startArchiving(3, compressed: compressed)
        try scene.faults.waitUntilHanging()
        run.signal(SIGTERM)
        let outcome = try run.wait(timeout: 1)
        #expect(outcome.status == 1 && !outcome.signaled, "\(outcome)")
        #expect(outcome.stderrLines.count == 1 && outcome.stderr.contains("interrupted"), "one line saying it was interrupted: \(outcome)")
        try scene.expectArchive([WAL.name(1)])

        try scene.faults.clearFaults()
        let retry = try scene.archiveSegment(3, compressed: compressed)
        #expect(retry.status == 0, "\(retry)")
        try scene.expectArchive([WAL.name(1), Self.segment + (compressed ? ".bz2" : "")])
    }

    // MARK: - walferry-cleanup

    struct CleanupCase: Sendable, CustomTestStringConvertible {
        let label: String
        let fault: Fault
        let stderr: [String]
        /// 1 for a failed removal or read; 2 for a location that cannot be reached (man page: as
        /// pg_archivecleanup, whose every failure to stat the location is 2).
        var status: Int32 = 1
        /// What is left after the failed run, besides the kept files.
        let left: [String]
        var testDescription: String { label }
    }

    static let cleanupCases: [CleanupCase] = [
        CleanupCase(label: "EIO on unlink", fault: .error("EIO", on: "unlink", name: WAL.name(2)),
                    stderr: ["walferry-cleanup: error: could not remove file \"ARCHIVE/\(WAL.name(2))\": \(errnoText(EIO))"], left: [WAL.name(2)]),
        CleanupCase(label: "ESTALE on unlink", fault: .error("ESTALE", on: "unlink", name: WAL.name(2)),
                    stderr: ["walferry-cleanup: error: could not remove file \"ARCHIVE/\(WAL.name(2))\": \(errnoText(ESTALE))"], left: [WAL.name(2)]),
        // The share's server is down: the location cannot be reached, which is 2, as pg_archivecleanup's
        // every failed stat of the location (walferry-cleanup(1), EXIT STATUS).
        CleanupCase(label: "EIO on stat of the archive location", fault: .error("EIO", on: "getattr", name: "archive"),
                    stderr: ["walferry-cleanup: error: could not access archive location \"ARCHIVE\": \(errnoText(EIO))"],
                    status: 2, left: [WAL.name(1), WAL.name(2), WAL.name(3)]),
        CleanupCase(label: "EIO on readdir", fault: .error("EIO", on: "readdir", name: "archive"),
                    stderr: ["walferry-cleanup: error: could not read archive location \"ARCHIVE\": \(errnoText(EIO))"],
                    left: [WAL.name(1), WAL.name(2), WAL.name(3)]),
        CleanupCase(label: "ESTALE on opendir", fault: .error("ESTALE", on: "opendir", name: "archive"),
                    stderr: ["walferry-cleanup: error: could not open archive location \"ARCHIVE\": \(errnoText(ESTALE))"],
                    left: [WAL.name(1), WAL.name(2), WAL.name(3)]),
    ]

    @Test(arguments: cleanupCases)
    func cleanupHoldsEveryFault(_ test: CleanupCase) throws {
        let scene = try FaultScene()
        for number in UInt64(2)...6 { #expect(try scene.archiveSegment(number).status == 0) }
        try scene.faults.setFaults([test.fault])
        let outcome = try runTool("walferry-cleanup", [scene.archive, WAL.name(4)])
        #expect(!(try scene.faults.takeFired()).isEmpty, "the fault never fired")
        #expect(outcome.status == test.status, "\(outcome)")
        #expect(outcome.stderrLines == test.stderr.map { $0.replacingOccurrences(of: "ARCHIVE", with: scene.archive) })
        let kept = [WAL.name(4), WAL.name(5), WAL.name(6)]
        try scene.expectArchive(test.left + kept)

        try scene.faults.clearFaults()
        let retry = try runTool("walferry-cleanup", [scene.archive, WAL.name(4)])
        #expect(retry.status == 0 && retry.stderr == "", "\(retry)")
        try scene.expectArchive(kept)
    }

    // MARK: - walferry-restore

    struct RestoreCase: Sendable, CustomTestStringConvertible {
        let label: String
        let fault: Fault
        let compressed: Bool
        /// The status in targeted recovery (--pitr); on a standby every failure is 1.
        let status: Int32
        /// The first line of standard error, `SOURCE` standing for the archive file's path.
        let firstLine: String?
        var testDescription: String { label + (compressed ? " (.bz2)" : "") }
    }

    static let restoreCases: [RestoreCase] = [false, true].flatMap { compressed -> [RestoreCase] in
        let name = WAL.name(3) + (compressed ? ".bz2" : "")
        return [
            RestoreCase(label: "EIO on read", fault: .error("EIO", on: "read", name: name, offset: compressed ? 30_000 : 300_000),
                        compressed: compressed, status: 201, firstLine: "walferry-restore: error: could not read file \"SOURCE\": \(errnoText(EIO))"),
            RestoreCase(label: "ESTALE on open", fault: .error("ESTALE", on: "open", name: name), compressed: compressed, status: 201,
                        firstLine: "walferry-restore: error: could not open file \"SOURCE\": \(errnoText(ESTALE))"),
            RestoreCase(label: "ESTALE on read", fault: .error("ESTALE", on: "read", name: name), compressed: compressed, status: 201,
                        firstLine: "walferry-restore: error: could not read file \"SOURCE\": \(errnoText(ESTALE))"),
            RestoreCase(label: "ESTALE on stat", fault: .error("ESTALE", on: "getattr", name: name), compressed: compressed, status: 201, firstLine: nil),
            RestoreCase(label: "ESTALE on the identity record", fault: .error("ESTALE", on: "getattr", name: "walferry.identity"),
                        compressed: compressed, status: 201, firstLine: nil),
            RestoreCase(label: "a flipped byte in the page header", fault: .flip(on: "read", name: name, offset: compressed ? 2000 : 9),
                        compressed: compressed, status: 202, firstLine: nil),
        ]
    }

    /// The archive of a FaultScene, filled past the faults, for restoring segment 3.
    static func restoreScene(compressed: Bool) throws -> (FaultScene, RestoreScene) {
        let faults = try FaultScene()
        let restore = try RestoreScene()
        try FileManager.default.copyItem(atPath: faults.data + "/pg_wal/" + WAL.name(3), toPath: faults.stored + "/" + WAL.name(3))
        if compressed {
            let outcome = try runProcess("/usr/bin/env", ["bzip2", "-9", faults.stored + "/" + WAL.name(3)])
            guard outcome.status == 0 else { throw TestFailure("bzip2 failed: \(outcome)") }
        }
        return (faults, restore)
    }

    @Test(arguments: restoreCases, ["--pitr", "--standby"])
    func restoreHoldsEveryFault(_ test: RestoreCase, mode: String) throws {
        let (faults, scene) = try Self.restoreScene(compressed: test.compressed)
        let source = faults.archive + "/" + WAL.name(3) + (test.compressed ? ".bz2" : "")
        try faults.faults.setFaults([test.fault])
        let outcome = try scene.restore([mode, source, "pg_wal/RECOVERYXLOG"])
        #expect(!(try faults.faults.takeFired()).isEmpty, "the fault never fired")
        #expect(outcome.status == (mode == "--pitr" ? test.status : 1) && !outcome.signaled, "\(outcome)")
        if let firstLine = test.firstLine {
            #expect(outcome.stderrLines.first == firstLine.replacingOccurrences(of: "SOURCE", with: source), "\(outcome)")
        } else {
            #expect(outcome.stderrLines.first?.hasPrefix("walferry-restore: error: ") == true, "\(outcome)")
        }
        #expect(outcome.stderrLines.contains(mode == "--pitr" ? RestoreCLITests.pitr(test.status) : RestoreCLITests.standbyDetail), "\(outcome)")
        #expect(try scene.pgWALContents() == [])

        try faults.faults.clearFaults()
        let retry = try scene.restore([mode, source, "pg_wal/RECOVERYXLOG"])
        #expect(retry.status == 0 && retry.stderr == "", "\(retry)")
        #expect(try fileDigest(scene.recoveryXLOG) == (try fileDigest(faults.data + "/pg_wal/" + WAL.name(3))))
        #expect(try scene.pgWALContents() == ["RECOVERYXLOG"])
    }

    /// SIGTERM while the archive's read hangs (a stalled NFS server): walferry-restore dies by SIGTERM
    /// within a second, as the server expects at shutdown, with no temporary file left in pg_wal.
    @Test(arguments: [false, true], ["--pitr", "--standby"])
    func restoreDiesPromptlyBySIGTERMDuringAHungRead(compressed: Bool, mode: String) throws {
        let (faults, scene) = try Self.restoreScene(compressed: compressed)
        let name = WAL.name(3) + (compressed ? ".bz2" : "")
        try faults.faults.setFaults([.hang(on: "read", name: name)])
        defer { try? faults.faults.clearFaults() }  // a run that outlives the deadline is released, then killed
        let run = try RunningProcess(walferryTool("walferry-restore"), [mode, faults.archive + "/" + name, "pg_wal/RECOVERYXLOG"],
                                     workingDirectory: scene.data)
        try faults.faults.waitUntilHanging()
        run.signal(SIGTERM)
        let outcome = try run.wait(timeout: 1)
        #expect(outcome.signaled && outcome.status == SIGTERM, "\(outcome)")
        #expect(try scene.pgWALContents() == [])

        try faults.faults.clearFaults()
        let retry = try scene.restore([mode, faults.archive + "/" + name, "pg_wal/RECOVERYXLOG"])
        #expect(retry.status == 0, "\(retry)")
        #expect(try fileDigest(scene.recoveryXLOG) == (try fileDigest(faults.data + "/pg_wal/" + WAL.name(3))))
    }
}
