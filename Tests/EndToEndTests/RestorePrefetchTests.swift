// walferry-restore's prefetch spool: the next segments are fetched by a detached worker and served by
// rename; a damaged, foreign or stale entry is never delivered; concurrent runs never corrupt the
// spool; and nothing is prefetched for pg_rewind or history files.

import Foundation
import Testing
import TestSupport

/// CRC-32C (Castagnoli), bit by bit: the checksum spool entries are named after.
func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}

extension RestoreScene {
    var spool: String { folder.join("spool") }

    func restoreWithPrefetch(_ number: UInt64, count: Int = 3, extra: [String] = []) throws -> ProcessOutcome {
        try restore(["--pitr", "--prefetch", "\(count)", "--spool", spool] + extra + [source(WAL.name(number)), "pg_wal/RECOVERYXLOG"])
    }

    /// The spool's entries (`SEGMENT.CRC`), sorted.
    func spoolEntries() throws -> [String] {
        try listDirectory(spool).filter { $0.count == 33 && !$0.hasPrefix(".") }
    }

    /// Waits until the spool holds entries for exactly these segments and no worker holds its lock
    /// (the worker starts after the tool has ended, so a free lock alone proves nothing).
    func waitForSpool(_ segments: [String]) throws {
        try waitUntil("the spool holds \(segments) and the prefetch worker has finished", timeout: 60) {
            guard (try? spoolEntries().map { String($0.prefix(24)) }) == segments else { return false }
            let fd = open(spool + "/walferry.spool.lock", O_RDWR)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return flock(fd, LOCK_EX | LOCK_NB) == 0
        }
    }
}

@Suite struct RestorePrefetchTests {
    @Test func theNextSegmentsAreServedFromTheSpool() throws {
        let scene = try RestoreScene()
        var contents: [UInt64: [UInt8]] = [:]
        for number: UInt64 in 1...6 { contents[number] = try scene.archiveSegment(number, compressed: number % 2 == 0) }
        let first = try scene.restoreWithPrefetch(1)
        #expect(first.status == 0, "\(first)")
        #expect(first.stderr == "")
        try scene.waitForSpool((2...4).map { WAL.name($0) })
        #expect(try scene.spoolEntries() == (UInt64(2)...4).map { "\(WAL.name($0)).\(String(format: "%08X", crc32c(contents[$0] ?? [])))" })
        #expect(try String(contentsOfFile: scene.spool + "/walferry.spool", encoding: .utf8) == "walferry prefetch spool 1\narchive: \(scene.archive)\n")
        #expect(try String(contentsOfFile: scene.spool + "/walferry-prefetch.log", encoding: .utf8) == (UInt64(2)...4).map {
            "walferry-restore: prefetched \"\(scene.archive)/\(WAL.name($0))\($0 % 2 == 0 ? ".bz2" : "")\"\n"
        }.joined())

        // Served from the spool: the archive no longer has it.
        try FileManager.default.removeItem(atPath: scene.source(WAL.name(2) + ".bz2"))
        try FileManager.default.removeItem(atPath: scene.recoveryXLOG)
        let second = try scene.restoreWithPrefetch(2)
        #expect(second.status == 0, "\(second)")
        #expect(second.stderr == "")
        #expect(try scene.read(scene.recoveryXLOG) == contents[2])
        #expect(try scene.pgWALContents() == ["RECOVERYXLOG"])
        // The next worker moved the window on: 3, 4, 5.
        try scene.waitForSpool((3...5).map { WAL.name($0) })
    }

    @Test func aDamagedOrForeignEntryIsNeverDelivered() throws {
        let scene = try RestoreScene()
        var contents: [UInt64: [UInt8]] = [:]
        for number: UInt64 in 1...5 { contents[number] = try scene.archiveSegment(number) }
        #expect(try scene.restoreWithPrefetch(1).status == 0)
        try scene.waitForSpool((2...4).map { WAL.name($0) })
        let entries = try scene.spoolEntries()

        // A damaged entry (one byte changed, name kept): discarded, fetched from the archive instead.
        let damaged = try #require(entries.first { $0.hasPrefix(WAL.name(2)) })
        try corruptByte(scene.spool + "/" + damaged, at: 5000)
        let crc = String(format: "%08X", crc32c(try scene.read(scene.spool + "/" + damaged)))
        try FileManager.default.removeItem(atPath: scene.recoveryXLOG)
        let second = try scene.restoreWithPrefetch(2, extra: ["--partial"])
        #expect(second.status == 0, "\(second)")
        #expect(second.stderrLines == [
            "walferry-restore: warning: discarding prefetched file \"\(scene.spool)/\(damaged)\": CRC-32C \(crc) of its contents does not match its name",
        ])
        #expect(try scene.read(scene.recoveryXLOG) == contents[2])
        try scene.waitForSpool((3...5).map { WAL.name($0) })

        // Another cluster's segment, under a name with its right checksum, and no copy in the archive:
        // "not found", never the foreign file.
        let foreign = WAL.segment(3, systemIdentifier: 42)
        for entry in try scene.spoolEntries() where entry.hasPrefix(WAL.name(3)) {
            try FileManager.default.removeItem(atPath: scene.spool + "/" + entry)
        }
        let foreignName = "\(WAL.name(3)).\(String(format: "%08X", crc32c(foreign)))"
        try writeFile(scene.spool + "/" + foreignName, foreign)
        try FileManager.default.removeItem(atPath: scene.source(WAL.name(3)))
        try FileManager.default.removeItem(atPath: scene.recoveryXLOG)
        let third = try scene.restoreWithPrefetch(3)
        #expect(third.status == 1, "\(third)")
        // The claimed name in the message holds the tool's process ID: compare the rest.
        #expect(third.stderrLines.count == 2)
        #expect(third.stderrLines.last == "walferry-restore: WAL file \"\(WAL.name(3))\" not found in archive \"\(scene.archive)\"")
        #expect(third.stderrLines.first?.hasPrefix("walferry-restore: warning: discarding prefetched file \"\(scene.spool)/\(foreignName)\": archive file \"\(scene.spool)/.\(WAL.name(3)).claimed-") == true)
        #expect(third.stderrLines.first?.hasSuffix("(system identifier 42, PostgreSQL 15, 1 MB segments) does not belong in archive \"\(scene.archive)\" (system identifier \(testSystemIdentifier), PostgreSQL 15, 1 MB segments)") == true)
        #expect(try scene.pgWALContents() == [])
        #expect(try listDirectory(scene.spool).filter { $0.contains("claimed") } == [])
    }

    @Test func aSpoolFilledFromAnotherArchiveIsNotUsed() throws {
        let scene = try RestoreScene()
        for number: UInt64 in 1...4 { try scene.archiveSegment(number) }
        #expect(try scene.restoreWithPrefetch(1).status == 0)
        try scene.waitForSpool((2...4).map { WAL.name($0) })

        // A second archive of the same cluster, without segment 2: the spool's copy is not its own.
        let other = try scene.folder.makeDirectory("other")
        try writeFile(other + "/walferry.identity", Array(identityRecordText().utf8))
        try FileManager.default.removeItem(atPath: scene.recoveryXLOG)
        let outcome = try scene.restore(["--pitr", "--prefetch", "3", "--spool", scene.spool, other + "/" + WAL.name(2), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines == ["walferry-restore: WAL file \"\(WAL.name(2))\" not found in archive \"\(other)\""])
        #expect(try scene.pgWALContents() == [])
    }

    @Test func nothingIsPrefetchedForPgRewindOrHistoryFiles() throws {
        let scene = try RestoreScene()
        for number: UInt64 in 1...4 { try scene.archiveSegment(number) }
        try writeFile(scene.source("00000002.history"), Array("1\t0/3000000\tno recovery target specified\n".utf8))
        let rewind = try runTool("walferry-restore", ["--prefetch", "3", "--spool", scene.spool, scene.source(WAL.name(1)),
                                                      scene.pgWAL + "/" + WAL.name(1)], workingDirectory: "/")
        #expect(rewind.status == 0, "\(rewind)")
        let history = try scene.restore(["--prefetch", "3", "--spool", scene.spool, scene.source("00000002.history"), "pg_wal/RECOVERYHISTORY"])
        #expect(history.status == 0, "\(history)")
        usleep(300_000)
        #expect(!entryExists(scene.spool))
    }

    @Test func theWorkerIsDetachedFromTheServer() throws {
        // Segment 2 is slow to decompress, so that the worker is still there when the tool has ended.
        let scene = try RestoreCLITests.slowScene()
        let first = String(format: "%08X%08X%08X", 1, 0, 1)
        try writeFile(scene.source(first), syntheticSegment(name: first, segmentSize: 8 << 20))
        let started = Date()
        let outcome = try scene.restore(["--standby", "--prefetch", "1", "--spool", scene.spool, "-j", "1", scene.source(first), "pg_wal/RECOVERYXLOG"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(outcome.status == 0, "\(outcome)")
        var pidText = ""
        try waitUntil("the worker has written its process ID", timeout: 10) {
            pidText = (try? String(contentsOfFile: scene.spool + "/walferry.spool.lock", encoding: .utf8)) ?? ""
            return pidText.hasSuffix("\n")
        }
        let pid = try #require(Int32(pidText.dropLast()))
        if entryExists("/proc/\(pid)") {
            // Its own session (so the server's signals to its process group miss it), and nothing of the
            // server's open: /dev/null, its log, and its own files.
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            #expect(fields.count > 4 && fields[3] == "\(pid)", "session: \(stat)")  // state ppid pgrp session
            let fds = try listDirectory("/proc/\(pid)/fd")
            for fd in fds {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? "?"
                switch fd {
                case "0", "1": #expect(target == "/dev/null")
                case "2": #expect(target == scene.spool + "/walferry-prefetch.log")
                default: #expect(target.hasPrefix(scene.folder.path), "fd \(fd) → \(target)")
                }
            }
        } else {
            Issue.record("the worker was gone \(Date().timeIntervalSince(started)) s after the start (the tool took \(elapsed) s)")
        }
        try scene.waitForSpool([RestoreCLITests.slowName])
    }

    @Test func concurrentRunsNeverCorruptTheSpool() throws {
        let scene = try RestoreScene()
        var contents: [UInt64: [UInt8]] = [:]
        for number: UInt64 in 1...10 { contents[number] = try scene.archiveSegment(number, compressed: true) }
        let folders = try (1...4).map { index -> String in
            let data = try scene.folder.makeDirectory("data\(index)")
            try scene.folder.makeDirectory("data\(index)/pg_wal")
            return data
        }
        let processes = try (1...4).map { index in
            try RunningProcess(walferryTool("walferry-restore"), ["--pitr", "--prefetch", "4", "--spool", scene.spool,
                                                                  scene.source(WAL.name(UInt64(index))), "pg_wal/RECOVERYXLOG"],
                               workingDirectory: folders[index - 1])
        }
        for process in processes {
            let outcome = try process.wait()
            #expect(!outcome.signaled && outcome.status == 0, "\(outcome)")
        }
        for index in 1...4 {
            #expect(try scene.read(folders[index - 1] + "/pg_wal/RECOVERYXLOG") == contents[UInt64(index)])
        }
        // Once no worker runs (its lock free twice, 0.2 s apart: a worker starts after its tool ended),
        // the spool holds at most a window of 4 entries, each sound. How many depends on the order the
        // four runs took the lock in and took entries from the spool, so the count is not pinned.
        try waitUntil("no prefetch worker runs", timeout: 60) {
            func free() -> Bool {
                let fd = open(scene.spool + "/walferry.spool.lock", O_RDWR)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                return flock(fd, LOCK_EX | LOCK_NB) == 0
            }
            guard free() else { return false }
            usleep(200_000)
            return free()
        }
        let entries = try scene.spoolEntries()
        #expect(entries.count <= 4, "\(entries)")
        #expect(entries.allSatisfy { entry in (2...8).contains { WAL.name($0) == entry.prefix(24) } }, "\(entries)")
        for entry in entries {
            let bytes = try scene.read(scene.spool + "/" + entry)
            #expect(String(format: "%08X", crc32c(bytes)) == entry.suffix(8), "\(entry)")
        }
        // And the spool still serves.
        for number: UInt64 in 5...7 {
            let outcome = try scene.restoreWithPrefetch(number)
            #expect(outcome.status == 0 && outcome.stderr == "", "\(outcome)")
            #expect(try scene.read(scene.recoveryXLOG) == contents[number])
        }
    }

    @Test func aSpoolMustBeUsableAndOutsideTheDataDirectory() throws {
        let scene = try RestoreScene()
        try scene.archiveSegment(1)
        try writeFile(scene.data + "/PG_VERSION", Array("15\n".utf8))
        let inside = try scene.restore(["--pitr", "--prefetch", "2", "--spool", scene.data + "/pg_wal/spool", scene.source(WAL.name(1)), "pg_wal/RECOVERYXLOG"])
        #expect(inside.status == 200)
        #expect(inside.stderrLines.first == "walferry-restore: error: the prefetch spool \"\(scene.data)/pg_wal/spool\" must be outside the data directory")

        // On another file system than pg_wal: a warning, and the file fetched as without --prefetch.
        // A tmpfs of the test's own, never skipped (/dev/shm can be on pg_wal's file system).
        let elsewhere = try TemporaryFileSystem(prefix: "walferry-spool")
        try #require(try fileSystemDevice(elsewhere.path) != fileSystemDevice(scene.pgWAL),
                     "the tmpfs on \(elsewhere.path) is on pg_wal's file system")
        let outcome = try scene.restore(["--pitr", "--prefetch", "2", "--spool", elsewhere.path, scene.source(WAL.name(1)), "pg_wal/RECOVERYXLOG"])
        #expect(outcome.status == 0)
        #expect(outcome.stderrLines == [
            "walferry-restore: warning: prefetch spool \"\(elsewhere.path)\" is not on the file system of \"pg_wal\"; prefetching is off",
            "walferry-restore: hint: Put the spool on pg_wal's file system, outside the data directory, so that a prefetched segment is delivered by a rename.",
        ])
        #expect(try scene.read(scene.recoveryXLOG) == WAL.segment(1))
    }
}
