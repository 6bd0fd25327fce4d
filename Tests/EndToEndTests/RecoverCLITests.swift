// walferry-recover as a user meets it: help, version, every usage error, and, on one real backup,
// the refusals that come before anything is written (no such backup, a mapping that names no
// tablespace, a backup off the target timeline's history, WAL in neither the tarball nor the archive),
// each with its exact message, its status and an untouched target folder.

import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct RecoverCLITests {
    static let tool = "walferry-recover"
    static let tryHelp = "walferry-recover: hint: Try \"walferry-recover --help\" for more information."

    static func environment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["PGDATA"] = nil
        return environment
    }

    @Test func helpListsEveryOptionAndTheExitStatuses() throws {
        for flag in ["--help", "-?", "-h"] {
            let outcome = try runTool(Self.tool, [flag])
            #expect(outcome.status == 0)
            #expect(outcome.stderr == "")
            #expect(outcome.stdout.hasPrefix("OVERVIEW: Make a standby or a point-in-time recovery from a walferry backup.\n"))
            for option in ["-B, --backups <BACKUPS>", "-D, --pgdata <DATADIR>", "--backup <ID>", "--standby", "--pitr",
                           "--wal-archive <DIR>", "--primary-conninfo <CONNINFO>", "--target-time <TIME>", "--target-lsn <LSN>",
                           "--target-xid <XID>", "--target-name <NAME>", "--target-immediate",
                           "--target-action <promote|pause|shutdown>", "--target-timeline <TLI>", "--keep-archiving",
                           "-T, --tablespace-mapping <OLDDIR=NEWDIR>", "--owner <USER>", "--force", "-j, --jobs <N>",
                           "-P, --progress", "-v, --verbose", "-V, --version",
                           "USAGE: walferry-recover -B BACKUPS -D DATADIR (--standby | --pitr) [OPTION]..."] {
                #expect(outcome.stdout.contains(option), "\(option) missing from --help")
            }
            let flat = outcome.stdout.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
            for status in ["0 recovered", "1 read or write error", "2 usage error", "3 the backup failed verification", "4 refused",
                           "5 no backup to recover from", "6 the backup cannot reach the target", "7 interrupted by a signal"] {
                #expect(flat.contains(status), "\(status)")
            }
        }
    }

    @Test(arguments: ["--version", "-V"])
    func version(_ flag: String) throws {
        let outcome = try runTool(Self.tool, [flag])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "walferry-recover (walferry) 0.1.0\n")
        #expect(outcome.stderr == "")
    }

    struct UsageError: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let message: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let base = ["-B", "/nonexistent", "-D", "/tmp/x"]
    static let usageErrors = [
        UsageError(arguments: ["-D", "/tmp/x", "--pitr"], message: "no backup given: use -B BACKUPS"),
        UsageError(arguments: ["-B", "/tmp", "--pitr"], message: "no data directory given: use -D or set PGDATA"),
        UsageError(arguments: base, message: "give exactly one of --standby and --pitr"),
        UsageError(arguments: base + ["--standby", "--pitr"], message: "give exactly one of --standby and --pitr"),
        UsageError(arguments: base + ["--standby", "--target-time", "2026-01-01 00:00:00+00"], message: "--target-time needs --pitr"),
        UsageError(arguments: base + ["--standby", "--target-action", "promote"], message: "--target-action needs --pitr"),
        UsageError(arguments: base + ["--pitr", "--primary-conninfo", "host=x"], message: "--primary-conninfo needs --standby"),
        UsageError(arguments: base + ["--pitr", "--target-lsn", "0/1", "--target-immediate"],
                   message: "give at most one recovery target (--target-lsn, --target-immediate)"),
        UsageError(arguments: base + ["--pitr", "--target-time", "2026-01-01 00:00:00"],
                   message: "invalid --target-time \"2026-01-01 00:00:00\": give it as 'YYYY-MM-DD HH:MM:SS+HH' with its time zone"),
        UsageError(arguments: base + ["--pitr", "--target-lsn", "0-1"], message: "invalid --target-lsn \"0-1\""),
        UsageError(arguments: base + ["--pitr", "--target-xid", "x"], message: "invalid --target-xid \"x\""),
        UsageError(arguments: base + ["--pitr", "--target-timeline", "0"],
                   message: "invalid --target-timeline \"0\": must be latest, current or a timeline number"),
        UsageError(arguments: base + ["--pitr", "--target-action", "stop"],
                   message: "the value 'stop' is invalid for '--target-action <promote|pause|shutdown>'. Please provide one of 'promote', 'pause' or 'shutdown'."),
        UsageError(arguments: base + ["--pitr", "-T", "/a"], message: "invalid tablespace mapping format \"/a\", must be \"OLDDIR=NEWDIR\""),
        UsageError(arguments: base + ["--pitr", "-T", "a=/b"], message: "old directory is not an absolute path in tablespace mapping: a"),
        UsageError(arguments: base + ["--pitr", "-T", "/a=/b=/c"], message: "multiple \"=\" signs in tablespace mapping"),
        UsageError(arguments: base + ["--pitr", "-j", "0"], message: "invalid number of jobs 0: must be between 1 and 256"),
        UsageError(arguments: base + ["--pitr", "extra"], message: "too many command-line arguments (first is \"extra\")"),
        UsageError(arguments: base + ["--pitr", "-q"], message: "unknown option '-q'"),
    ]

    @Test(arguments: usageErrors)
    func usageErrorsExit2WithAHint(_ usage: UsageError) throws {
        let outcome = try runTool(Self.tool, usage.arguments, environment: Self.environment())
        #expect(outcome.status == 2)
        #expect(outcome.stdout == "")
        #expect(outcome.stderrLines == ["walferry-recover: error: \(usage.message)", Self.tryHelp])
    }

    @Test func refusalsBeforeAnythingIsWritten() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory(prefix: "walferry-recover-cli")
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let backups = try folder.makeDirectory("backups")
        let target = try folder.makeDirectory("restore")
        try handToPostgresUser(target)
        let data = target + "/data"
        let empty = try folder.makeDirectory("empty")

        // Nothing to recover from.
        var outcome = try runRecoverTool(["-B", empty, "-D", data, "--pitr"])
        #expect(outcome.status == 5)
        #expect(outcome.stderrLines == ["walferry-recover: error: no complete backup in \"\(empty)\"",
                                        "walferry-recover: hint: walferry-backup -o DIR writes one timestamped directory per backup there."])

        let primary = try archivingCluster(pg, archive: archive, name: "primary-cli")
        try primary.start()
        defer { try? primary.stop() }
        let backup = try runTool("walferry-backup", ["-d", conninfo(primary), "-D", primary.dataDirectory, "-o", backups, "-c", "fast",
                                                     "--wal-archive", archive])
        #expect(backup.status == 0, "\(backup)")
        let id = try listDirectory(backups).last ?? ""

        outcome = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "--backup", "20200101T000000Z"])
        #expect(outcome.status == 5)
        #expect(outcome.stderrLines == ["walferry-recover: error: no complete backup \"20200101T000000Z\" in \"\(backups)\"",
                                        "walferry-recover: hint: The complete backups there: \(id)."])

        outcome = try runRecoverTool(["-B", backups, "-D", data, "--pitr", "-T", "/old=/new"])
        #expect(outcome.status == 2)
        #expect(outcome.stderrLines == ["walferry-recover: error: tablespace mapping \"/old=/new\" names no tablespace of backup \"\(id)\"",
                                        "walferry-recover: hint: Its tablespaces: none."])

        // A timeline 2 that forked off timeline 1 before the backup ended.
        let manifest = fileText(backups + "/" + id + "/backup_manifest")
        let endLSN = manifest.components(separatedBy: "\"End-LSN\": \"").last?.components(separatedBy: "\"").first ?? "?"
        try writeFile(archive + "/00000002.history", Array("1\t0/1000000\tno recovery target specified\n".utf8))
        outcome = try runRecoverTool(["-B", backups, "-D", data, "--standby", "--wal-archive", archive])
        #expect(outcome.status == 6)
        #expect(outcome.stderrLines == [
            "walferry-recover: error: backup \"\(id)\" is not in the history of timeline 2: timeline 2 forked off timeline 1 at 0/1000000, before the backup ended at \(endLSN)",
            "walferry-recover: hint: Choose a backup that ended before the fork, or give --target-timeline 1.",
        ])
        outcome = try runRecoverTool(["-B", backups, "-D", data, "--standby", "--wal-archive", archive, "--target-timeline", "3"])
        #expect(outcome.status == 6)
        #expect(outcome.stderrLines == [
            "walferry-recover: error: the history of timeline 3 is unknown: \"00000003.history\" is not in the WAL archive",
            "walferry-recover: hint: Give the archive that holds it with --wal-archive.",
        ])
        #expect(try listDirectory(target) == [])
        try FileManager.default.removeItem(atPath: archive + "/00000002.history")

        // The same backup repacked by GNU tar without its WAL: the recovery needs the archive.
        let unpacked = try folder.makeDirectory("unpacked")
        #expect(try runProcess("/bin/tar", ["-xjf", backups + "/" + id + "/base.tar.bz2", "-C", unpacked]).status == 0)
        let wal = try listDirectory(unpacked + "/pg_wal").filter { $0.count == 24 }
        #expect(!wal.isEmpty)
        for name in wal { try FileManager.default.removeItem(atPath: unpacked + "/pg_wal/" + name) }
        let repacked = try folder.makeDirectory("repacked/" + id)
        try FileManager.default.copyItem(atPath: backups + "/" + id + "/backup_manifest", toPath: repacked + "/backup_manifest")
        #expect(try runProcess("/bin/tar", ["--format=pax", "-cjf", repacked + "/base.tar.bz2", "-C", unpacked, "."]).status == 0)
        outcome = try runRecoverTool(["-B", repacked, "-D", data, "--pitr"])
        #expect(outcome.status == 6)
        #expect(outcome.stderrLines == [
            "walferry-recover: error: WAL file \"\(wal[0])\" needed by backup \"\(id)\" is neither in the backup nor in a WAL archive",
            "walferry-recover: hint: Give the WAL archive with --wal-archive.",
        ])
        #expect(try listDirectory(target) == [])
        outcome = try runRecoverTool(["-B", repacked, "-D", data, "--pitr", "--wal-archive", archive])
        #expect(outcome.status == 0, "\(outcome)")
        #expect(try listDirectory(target) == ["data"])
    }
}
