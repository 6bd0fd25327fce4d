// The multi-call binary the .deb installs (Sources/walferry): started through a symbolic link named
// walferry-archive, walferry-restore or walferry-cleanup, it must be that tool in every respect the
// tests can see, including the prefetch worker that walferry-restore starts again from
// /proc/self/exe (the link's name is all that tells the binary which tool it is).

import Foundation
import Testing
import TestSupport

@Suite struct MultiCallTests {
    /// A folder of symbolic links to the built multi-call binary, one per tool name.
    struct Links {
        let folder: TemporaryDirectory
        init() throws {
            folder = try TemporaryDirectory(prefix: "walferry-multicall")
            for name in ["walferry-archive", "walferry-restore", "walferry-cleanup"] {
                try FileManager.default.createSymbolicLink(atPath: folder.join(name), withDestinationPath: walferryTool("walferry"))
            }
        }
        func run(_ name: String, _ arguments: [String], in directory: String? = nil) throws -> ProcessOutcome {
            try runProcess(folder.join(name), arguments, workingDirectory: directory)
        }
    }

    /// Help, version and usage errors, byte for byte those of the tools' own executables.
    @Test(arguments: ["walferry-archive", "walferry-restore", "walferry-cleanup"])
    func eachNameAnswersAsItsTool(name: String) throws {
        let links = try Links()
        for arguments in [["--version"], ["--help"], [], ["a", "b", "c"], ["--no-such-option"]] {
            let linked = try links.run(name, arguments)
            let own = try runTool(name, arguments)
            #expect(linked.status == own.status, "\(name) \(arguments)")
            #expect(linked.stdout == own.stdout, "\(name) \(arguments)")
            #expect(linked.stderr == own.stderr, "\(name) \(arguments)")
        }
        #expect(try links.run(name, ["--version"]).stdout == "\(name) (walferry) 0.1.0\n")
    }

    @Test func archiveRestoreWithPrefetchAndCleanupThroughTheLinks() throws {
        let links = try Links()
        let scene = try RestoreScene(identity: false)
        var contents: [UInt64: [UInt8]] = [:]
        for number: UInt64 in 1...4 {
            contents[number] = WAL.segment(number)
            try writeFile(scene.pgWAL + "/" + WAL.name(number), contents[number] ?? [])
            let archived = try links.run("walferry-archive", ["pg_wal/" + WAL.name(number), scene.source(WAL.name(number) + ".bz2")], in: scene.data)
            #expect(archived.status == 0, "\(archived)")
            try FileManager.default.removeItem(atPath: scene.pgWAL + "/" + WAL.name(number))
        }

        let restored = try links.run("walferry-restore", ["--pitr", "--prefetch", "2", "--spool", scene.spool, scene.source(WAL.name(1)), "pg_wal/RECOVERYXLOG"], in: scene.data)
        #expect(restored.status == 0, "\(restored)")
        #expect(restored.stderr == "")
        #expect(try readFile(scene.recoveryXLOG) == contents[1])
        // The detached worker is the same binary started again; only its argv[0] makes it walferry-restore.
        try scene.waitForSpool([WAL.name(2), WAL.name(3)])

        let cleaned = try links.run("walferry-cleanup", ["-x", ".bz2", scene.archive, WAL.name(3)])
        #expect(cleaned.status == 0, "\(cleaned)")
        #expect(try listDirectory(scene.archive) == [WAL.name(3) + ".bz2", WAL.name(4) + ".bz2", "walferry.identity"])
    }

    @Test func underAnyOtherNameItExplainsAndExits127() throws {
        let links = try Links()
        try FileManager.default.createSymbolicLink(atPath: links.folder.join("walferry-backup"), withDestinationPath: walferryTool("walferry"))
        for name in ["walferry-backup"] {
            let outcome = try links.run(name, ["--version"])
            // Not 1-125, which a targeted recovery's restore_command would read as "not in the archive".
            #expect(outcome.status == 127)
            #expect(outcome.stdout == "")
            #expect(outcome.stderrLines == [
                "walferry: error: started as \"\(links.folder.join(name))\", which is not the name of a walferry tool",
                "walferry: hint: Run it through one of its names: walferry-archive, walferry-restore, walferry-cleanup (symbolic links to this file).",
            ])
        }
        let bare = try runProcess(walferryTool("walferry"), [])
        #expect(bare.status == 127)
        #expect(bare.stderrLines.first == "walferry: error: started as \"\(walferryTool("walferry"))\", which is not the name of a walferry tool")
    }
}
