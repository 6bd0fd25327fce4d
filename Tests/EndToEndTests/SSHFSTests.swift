// The tools on a network share that goes away: an archive on sshfs over a loopback sshd that the test
// starts, crashes and starts again (TestSupport's LoopbackSSHFS). Two dozen segments are archived
// (plain and .bz2) and restored through it; the server is then killed while walferry-archive is
// midway through a segment, and every tool is run while it is down: each fails with its documented
// status, no final name holds a partial or corrupt file (hashed against the sources), and each
// succeeds once the server is back.
//
// Like FaultTests, except that the faults are a real network file system's rather than injected.

import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct SSHFSTests {
    @Test func archiveAndRestoreThroughAShareWhoseServerGoesAwayAndComesBack() throws {
        let share = try LoopbackSSHFS()
        let folder = try TemporaryDirectory(prefix: "walferry-sshfs-data")
        var files: [String: [UInt8]] = [:]
        for number in UInt64(1)...26 { files[WAL.name(number)] = WAL.segment(number) }
        // Segment 25 takes bzip2 a while: the server is killed while it is being archived.
        files[WAL.name(25)] = syntheticSegment(name: WAL.name(25), seed: 25, incompressible: true)
        let data = try fakeDataDirectory(in: folder, files: files)
        try FileManager.default.createDirectory(atPath: share.join("archive"), withIntermediateDirectories: false)
        let archive = share.join("archive"), stored = share.exported + "/archive"
        let restoreScene = try RestoreScene(identity: false)

        func file(_ number: UInt64, compressed: Bool) -> String { WAL.name(number) + (compressed ? ".bz2" : "") }
        func archiveArguments(_ number: UInt64, compressed: Bool) -> [String] {
            ["-j", "1", "pg_wal/" + WAL.name(number), archive + "/" + file(number, compressed: compressed)]
        }
        func archiveSegment(_ number: UInt64, compressed: Bool = false) throws -> ProcessOutcome {
            try runTool("walferry-archive", archiveArguments(number, compressed: compressed), workingDirectory: data)
        }
        func restore(_ number: UInt64, _ mode: String) throws -> ProcessOutcome {
            try? FileManager.default.removeItem(atPath: restoreScene.recoveryXLOG)
            return try restoreScene.restore([mode, archive + "/" + WAL.name(number), "pg_wal/RECOVERYXLOG"])
        }
        /// The stored archive holds exactly `names` and the identity record, each with its source's bytes.
        func expectStored(_ names: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
            // sshfs renames a file removed while open (the temporary file after its link) to
            // .fuse_hidden*, and removes that when the file is closed, a moment after the run.
            try waitUntil("sshfs has removed its .fuse_hidden files", timeout: 5) {
                try listDirectory(stored).allSatisfy { !$0.hasPrefix(".fuse_hidden") }
            }
            let listing = try listDirectory(stored)
            #expect(listing == (names + ["walferry.identity"]).sorted(), sourceLocation: sourceLocation)
            for name in names {
                let plain = name.hasSuffix(".bz2") ? String(name.dropLast(4)) : name
                let command = name.hasSuffix(".bz2") ? "bzip2 -dc '\(stored)/\(name)' | sha256sum" : "sha256sum < '\(stored)/\(name)'"
                let digest = try runProcess("/bin/bash", ["-c", "set -o pipefail; " + command])
                let expected = try fileDigest(data + "/pg_wal/" + plain)
                #expect(digest.status == 0 && String(digest.stdout.prefix(64)) == expected,
                        "\(name) does not hold \(plain)'s bytes", sourceLocation: sourceLocation)
            }
        }

        // 1. Two dozen segments, every third compressed, archived and restored through the share.
        var archived: [String] = []
        for number in UInt64(1)...24 {
            let outcome = try archiveSegment(number, compressed: number % 3 == 0)
            #expect(outcome.status == 0, "segment \(number): \(outcome)")
            archived.append(file(number, compressed: number % 3 == 0))
        }
        try expectStored(archived)
        for number in UInt64(1)...24 {
            let outcome = try restore(number, "--pitr")
            #expect(outcome.status == 0 && outcome.stderr == "", "segment \(number): \(outcome)")
            let expected = try fileDigest(data + "/pg_wal/" + WAL.name(number))
            #expect(try fileDigest(restoreScene.recoveryXLOG) == expected)
        }

        // 2. The server crashes while segment 25 is being compressed into the share: the run is held
        // once its temporary file exists, the server killed, the run let go.
        let temporary = stored + "/." + file(25, compressed: true) + ".walferry-tmp"
        let midway = try RunningProcess(walferryTool("walferry-archive"), archiveArguments(25, compressed: true), workingDirectory: data)
        let deadline = Date().addingTimeInterval(10)
        while !entryExists(temporary), Date() < deadline, try midway.poll() == nil { usleep(500) }
        midway.signal(SIGSTOP)
        #expect(entryExists(temporary), "walferry-archive never created \(temporary)")
        share.stopServer()
        midway.signal(SIGCONT)
        let interrupted = try midway.wait(timeout: 30)
        #expect(interrupted.status == 1 && !interrupted.signaled, "\(interrupted)")
        #expect(interrupted.stderrLines.first?.hasPrefix("walferry-archive: error: could not ") == true, "\(interrupted)")
        #expect(!entryExists(stored + "/" + file(25, compressed: true)))

        // 3. Every tool while the server is down.
        let down = try archiveSegment(26)
        #expect(down.status == 1, "\(down)")
        #expect(down.stderrLines.first?.hasPrefix("walferry-archive: error: could not ") == true, "\(down)")
        let pitr = try restore(1, "--pitr")
        #expect(pitr.status == 201, "\(pitr)")
        #expect(pitr.stderrLines.last == RestoreCLITests.pitr(201), "\(pitr)")
        let standby = try restore(1, "--standby")
        #expect(standby.status == 1, "\(standby)")
        #expect(standby.stderrLines.first?.hasPrefix("walferry-restore: error: ") == true, "\(standby)")
        #expect(try restoreScene.pgWALContents() == [])
        let cleanup = try runTool("walferry-cleanup", ["-x", ".bz2", archive, WAL.name(20)])
        // The location cannot be reached: 2, as pg_archivecleanup (walferry-cleanup(1), EXIT STATUS).
        #expect(cleanup.status == 2, "\(cleanup)")
        #expect(cleanup.stderrLines.first?.hasPrefix("walferry-cleanup: error: could not ") == true, "\(cleanup)")
        // Nothing under a final name changed; segment 25's temporary file may stay for the next run.
        let finalNames = try listDirectory(stored).filter { !$0.hasPrefix(".") }
        #expect(finalNames == (archived + ["walferry.identity"]).sorted())

        // 4. The server is back: every run succeeds, and the leftover temporary file is gone.
        try share.startServer()
        for (number, compressed) in [(UInt64(25), true), (26, false)] {
            let outcome = try archiveSegment(number, compressed: compressed)
            #expect(outcome.status == 0 && outcome.stderr == "", "segment \(number): \(outcome)")
            archived.append(file(number, compressed: compressed))
        }
        for number in [UInt64(1), 25, 26] {
            let outcome = try restore(number, "--standby")
            #expect(outcome.status == 0 && outcome.stderr == "", "segment \(number): \(outcome)")
            let expected = try fileDigest(data + "/pg_wal/" + WAL.name(number))
            #expect(try fileDigest(restoreScene.recoveryXLOG) == expected)
        }
        let cleaned = try runTool("walferry-cleanup", ["-x", ".bz2", archive, WAL.name(20)])
        #expect(cleaned.status == 0 && cleaned.stderr == "", "\(cleaned)")
        try expectStored(archived.filter { $0 >= WAL.name(20) })
    }
}
