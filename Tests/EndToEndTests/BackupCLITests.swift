// walferry-backup as a user meets it: help, version, every usage error, the statuses for an
// unreachable server, a wrong data directory, missing WAL and failed retention, and passwords that
// never reach the output, whichever way they were given.

import Foundation
import Testing
import TestSupport

@Suite struct BackupCLITests {
    static let tool = "walferry-backup"
    static let tryHelp = "walferry-backup: hint: Try \"walferry-backup --help\" for more information."

    /// The environment without PGDATA (so that -D is needed) and with `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in ["PGDATA", "PGPASSWORD", "PGPASSFILE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"] {
            environment[name] = nil
        }
        return environment.merging(extra) { _, new in new }
    }

    @Test func helpListsEveryOptionAndTheExitStatuses() throws {
        for flag in ["--help", "-?", "-h"] {
            let outcome = try runTool(Self.tool, [flag])
            #expect(outcome.status == 0)
            #expect(outcome.stderr == "")
            #expect(outcome.stdout.hasPrefix("OVERVIEW: Take a base backup of a running PostgreSQL server as bzip2 tarballs.\n"))
            for option in ["-d, --dbname <CONNINFO>", "-D, --pgdata <DIR>", "-o, --output <OUTPUT>", "-l, --label <LABEL>",
                           "-c, --checkpoint <fast|spread>", "--wal-archive <DIR>", "--keep <N>", "-j, --jobs <N>",
                           "-Z, --compress-level <LEVEL>", "-P, --progress", "-v, --verbose", "-V, --version",
                           "15 2 * * * walferry-backup -D /var/lib/postgresql/15/main -o /mnt/backups",
                           "USAGE: walferry-backup [OPTION]... -o OUTPUT"] {
                #expect(outcome.stdout.contains(option), "\(option) missing from --help")
            }
            // Every exit status is named in the help, as in the man page.
            for status in ["0 backup complete and durable", "1 backup failed", "2 usage error", "3 server", "4 -D is not",
                           "5 the backup's session", "6 another run", "7 backup complete but", "8 interrupted"] {
                #expect(outcome.stdout.replacingOccurrences(of: "\n", with: " ").contains(status), "\(status)")
            }
        }
    }

    @Test(arguments: ["--version", "-V"])
    func version(_ flag: String) throws {
        let outcome = try runTool(Self.tool, [flag])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "walferry-backup (walferry) 0.1.0\n")
        #expect(outcome.stderr == "")
    }

    struct UsageError: Sendable, CustomTestStringConvertible {
        let arguments: [String]
        let message: String
        var hint: String? = BackupCLITests.tryHelp
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let usageErrors = [
        UsageError(arguments: ["-D", "/tmp"], message: "no output given: use -o DIR, -o FILE or -o -"),
        UsageError(arguments: ["-o", "/tmp"], message: "no data directory given: use -D or set PGDATA"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "extra"], message: "too many command-line arguments (first is \"extra\")"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "-c", "slow"], message: "the value 'slow' is invalid for '-c <fast|spread>'. Please provide one of 'fast' and 'spread'."),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "--keep", "0"], message: "--keep must be at least 1"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "--keep", "many"], message: "the value 'many' is invalid for '--keep <N>'"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "-j", "0"], message: "invalid number of jobs 0: must be between 1 and 256"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "-Z", "10"], message: "-Z/--compress-level must be between 1 and 9"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "-l", String(repeating: "x", count: 1025)], message: "backup label too long (max 1024 bytes)"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "-l", "two\nlines"], message: "backup label must not contain a newline"),
        UsageError(arguments: ["-D", "/tmp", "-o", "/tmp", "-q"], message: "unknown option '-q'"),
        UsageError(arguments: ["-D", "/tmp", "-o"], message: "missing value for '-o <OUTPUT>'"),
    ]

    @Test(arguments: usageErrors)
    func usageErrorsExit2WithAHint(_ usage: UsageError) throws {
        let outcome = try runTool(Self.tool, usage.arguments, environment: Self.environment())
        #expect(outcome.status == 2)
        #expect(outcome.stdout == "")
        #expect(outcome.stderrLines == ["walferry-backup: error: \(usage.message)"] + (usage.hint.map { [$0] } ?? []))
    }

    @Test func outputsThatCannotBeUsed() throws {
        let folder = try TemporaryDirectory()
        try writeFile(folder.join("exists.tar.bz2"), [1])
        let cases: [([String], [String])] = [
            (["-o", folder.join("exists.tar.bz2")], [
                "walferry-backup: error: output file \"\(folder.join("exists.tar.bz2"))\" already exists",
                "walferry-backup: hint: Give a directory to -o for backups that run again and again: each run makes a timestamped directory in it.",
            ]),
            (["-o", folder.join("missing/b.tar.bz2")], [
                "walferry-backup: error: directory \"\(folder.join("missing"))\" of output file \"\(folder.join("missing/b.tar.bz2"))\" does not exist",
            ]),
            (["-o", folder.join("missing/")], [
                "walferry-backup: error: output directory \"\(folder.join("missing/"))\" does not exist",
                "walferry-backup: hint: Create it first: walferry-backup does not create the backup directory itself.",
            ]),
            (["-o", folder.join("new.tar.bz2"), "--keep", "3"], ["walferry-backup: error: --keep needs -o to name a directory of backups"]),
        ]
        for (arguments, lines) in cases {
            let outcome = try runTool(Self.tool, ["-D", folder.path] + arguments, environment: Self.environment())
            #expect(outcome.status == 2, "\(arguments)")
            #expect(outcome.stderrLines == lines)
        }
        #expect(try listDirectory(folder.path) == ["exists.tar.bz2"])
    }

    @Test func aDirectoryThatIsNoDataDirectoryExits4() throws {
        let folder = try TemporaryDirectory()
        let output = try folder.makeDirectory("out")
        let outcome = try runTool(Self.tool, ["-D", folder.join("nodata"), "-o", output], environment: Self.environment())
        #expect(outcome.status == 4)
        #expect(outcome.stderrLines == [
            "walferry-backup: error: could not read file \"\(folder.join("nodata"))/PG_VERSION\": No such file or directory",
            "walferry-backup: hint: Is \"\(folder.join("nodata"))\" a PostgreSQL data directory? Give it with -D or PGDATA.",
        ])
        // PGDATA works as -D does.
        let fromEnvironment = try runTool(Self.tool, ["-o", output], environment: Self.environment(["PGDATA": folder.join("nodata")]))
        #expect(fromEnvironment.status == 4)
    }

    @Test func anUnreachableServerExits3() throws {
        let folder = try TemporaryDirectory()
        try writeFile(folder.join("PG_VERSION"), Array("15\n".utf8))
        let output = try folder.makeDirectory("out")
        let outcome = try runTool(Self.tool, ["-d", "host=\(folder.path) port=5999 user=postgres", "-D", folder.path, "-o", output],
                                  environment: Self.environment())
        #expect(outcome.status == 3)
        #expect(outcome.stderrLines == [
            "walferry-backup: error: could not connect to the server: connection to server on socket \"\(folder.path)/.s.PGSQL.5999\" failed: No such file or directory",
            "walferry-backup: hint: Is the server running locally and accepting connections on that socket?",
        ])
        #expect(try listDirectory(output) == [".walferry-backup.lock"])
    }

    /// One cluster that asks for a password, for everything that needs a server.
    @Test func againstAServerThatWantsAPassword() throws {
        let pg = try PostgresInstallation.system()
        let folder = try TemporaryDirectory()
        let archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        let cluster = try archivingCluster(pg, archive: archive, name: "password")
        try cluster.start()
        defer { try? cluster.stop() }
        try cluster.sql("ALTER ROLE postgres PASSWORD 'right-password-1'")
        let identifier = try cluster.sql("SELECT system_identifier FROM pg_control_system()")
        try writeFile(cluster.dataDirectory + "/pg_hba.conf", Array("local all all scram-sha-256\n".utf8))
        try handToPostgresUser(cluster.dataDirectory + "/pg_hba.conf", recursive: false)
        let reload = try runAsPostgresUser(pg.tool("pg_ctl"), ["-D", cluster.dataDirectory, "reload"])
        #expect(reload.status == 0)
        usleep(300_000)

        let output = try folder.makeDirectory("out")
        let host = "host=\(cluster.socketDirectory) port=\(cluster.port) user=postgres dbname=postgres"
        let passfile = folder.join("pgpass")
        try writeFile(passfile, Array("*:*:*:postgres:passfile-secret-2\n".utf8))
        chmod(passfile, 0o600)
        let authenticationFailed = [
            "walferry-backup: error: could not connect to the server: connection to server on socket \"\(cluster.socketDirectory)/.s.PGSQL.5432\" failed: FATAL:  password authentication failed for user \"postgres\"",
            "walferry-backup: hint: Check the password in PGPASSWORD or in the password file (PGPASSFILE, ~/.pgpass); walferry-backup never prints it.",
        ]
        let wrongWays: [(String, [String], [String: String])] = [
            ("env-secret-1", ["-d", host], ["PGPASSWORD": "env-secret-1"]),
            ("passfile-secret-2", ["-d", host], ["PGPASSFILE": passfile]),
            ("conninfo-secret-3", ["-d", host + " password=conninfo-secret-3"], [:]),
            ("uri-secret-4", ["-d", "postgresql://postgres:uri-secret-4@/postgres?host=\(cluster.socketDirectory)"], [:]),
        ]
        for (secret, arguments, environment) in wrongWays {
            // libpq says where a password came from when it came from the password file.
            var expected = authenticationFailed
            if environment["PGPASSFILE"] != nil {
                expected.insert("walferry-backup: hint: password retrieved from file \"\(passfile)\"", at: 1)
            }
            let outcome = try runTool(Self.tool, arguments + ["-D", cluster.dataDirectory, "-o", output, "-v"],
                                      environment: Self.environment(environment))
            #expect(outcome.status == 3, "\(secret): \(outcome)")
            #expect(outcome.stderrLines == expected, "\(secret)")
            #expect(!outcome.stderr.contains(secret) && !outcome.stdout.contains(secret))
        }

        // The right password: -v names the connection without it.
        let good = Self.environment(["PGPASSWORD": "right-password-1"])
        let base = ["-d", host, "-c", "fast"]

        // -D of another cluster: same version, other system identifier.
        let other = try folder.makeDirectory("other", mode: 0o700)
        try writeFile(other + "/PG_VERSION", Array("15\n".utf8))
        try FileManager.default.createDirectory(atPath: other + "/global", withIntermediateDirectories: true)
        try writeFile(other + "/global/pg_control", [1, 2, 3, 4, 5, 6, 7, 8] + [UInt8](repeating: 0, count: 8184))
        let mismatch = try runTool(Self.tool, base + ["-D", other, "-o", output, "-v"], environment: good)
        #expect(mismatch.status == 4)
        #expect(mismatch.stderrLines == [
            "walferry-backup: connected to host=\(cluster.socketDirectory) port=5432 dbname=postgres user=postgres",
            "walferry-backup: error: data directory \"\(other)\" belongs to database system \(0x0807_0605_0403_0201 as UInt64), but the server's is \(identifier)",
            "walferry-backup: hint: Give with -D the data directory of the server that -d connects to.",
        ])
        #expect(!mismatch.stderr.contains("right-password-1"))
        // Another major version.
        try writeFile(other + "/PG_VERSION", Array("14\n".utf8))
        let version = try runTool(Self.tool, base + ["-D", other, "-o", output], environment: good)
        #expect(version.status == 4)
        #expect(version.stderrLines.first == "walferry-backup: error: data directory \"\(other)\" is of PostgreSQL 14, but the server is PostgreSQL 15")
        // A copy of the right files elsewhere: same identifier, but not the server's data_directory.
        try writeFile(other + "/PG_VERSION", Array("15\n".utf8))
        try FileManager.default.removeItem(atPath: other + "/global/pg_control")
        try FileManager.default.copyItem(atPath: cluster.dataDirectory + "/global/pg_control", toPath: other + "/global/pg_control")
        let copy = try runTool(Self.tool, base + ["-D", other, "-o", output], environment: good)
        #expect(copy.status == 4)
        #expect(copy.stderrLines == [
            "walferry-backup: error: data directory \"\(other)\" is not the server's data directory \"\(cluster.dataDirectory)\"",
            "walferry-backup: hint: It has the same system identifier: is it a standby's data directory, or a copy?",
        ])

        // WAL missing from the archive (an empty directory given instead): exit 1, nothing left.
        let emptyArchive = try folder.makeDirectory("empty-archive")
        let missing = try runTool(Self.tool, base + ["-D", cluster.dataDirectory, "-o", output, "--wal-archive", emptyArchive],
                                  environment: good)
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderrLines.count == 2)
        #expect(missing.stderrLines.first?.hasPrefix("walferry-backup: error: WAL file \"00000001") == true)
        #expect(missing.stderrLines.first?.hasSuffix("\" is not in the archive \"\(emptyArchive)\"") == true)
        #expect(missing.stderrLines.last == "walferry-backup: hint: Is archive_command copying to this directory, and is archive_mode on?")
        #expect(try listDirectory(output) == [".walferry-backup.lock"])

        // WAL present but damaged: a failure that names the file and the damage, never "not in the
        // archive", and never a backup. Every name the backup could start at is planted (each run
        // moves the server to a new segment), as garbage compressed and as garbage plain.
        let names = (0..<256).map { String(format: "00000001000000000000%04X", $0) }
        for (kind, error, damage) in [(".bz2", "could not decompress file", "compressed data is not in bzip2 format"),
                                      ("", "archive file", "too short for a WAL segment header")] {
            let damagedArchive = try folder.makeDirectory("damaged-archive" + kind)
            for name in names { try writeFile(damagedArchive + "/" + name + kind, Array("not WAL at all\n".utf8)) }
            let damaged = try runTool(Self.tool, base + ["-D", cluster.dataDirectory, "-o", output, "--wal-archive", damagedArchive],
                                      environment: good)
            #expect(damaged.status == 1, "\(damaged)")
            let line = damaged.stderrLines.first ?? ""
            #expect(line.hasPrefix("walferry-backup: error: \(error) \"\(damagedArchive)/00000001"), "\(damaged)")
            #expect(line.contains(damage), "\(line)")
            #expect(!damaged.stderr.contains("is not in the archive"), "\(damaged)")
            #expect(try listDirectory(output) == [".walferry-backup.lock"])
        }

        // A backup to standard output: a tarball with backup_manifest as its last member.
        let stream = try runTool(Self.tool, base + ["-D", cluster.dataDirectory, "-o", "-"], environment: good)
        #expect(stream.status == 0 && stream.stderr == "", "\(stream.stderr)")
        try writeFile(folder.join("stream.tar.bz2"), stream.stdoutBytes)
        let listing = try runProcess("/bin/tar", ["-tjf", folder.join("stream.tar.bz2")])
        #expect(listing.status == 0)
        #expect(listing.stdoutLines.suffix(2) == ["backup_label", "backup_manifest"], "\(listing.stdoutLines.suffix(4))")

        // -P without a terminal: progress lines anyway, the last one at 100 %.
        let progress = try runTool(Self.tool, base + ["-D", cluster.dataDirectory, "-o", folder.join("p.tar.bz2"), "-P"], environment: good)
        #expect(progress.status == 0)
        #expect(progress.stderrLines.last?.hasPrefix("walferry-backup: ") == true, "\(progress.stderr)")
        #expect(progress.stderrLines.last?.contains(" (100%), ") == true, "\(progress.stderr)")
        #expect(entryExists(folder.join("p.tar.bz2")) && !entryExists(folder.join(".walferry-backup-partial-p.tar.bz2")))

        // Retention that cannot find the oldest kept backup's start (a manifest without WAL-Ranges):
        // the new backup is complete and stays, nothing is removed, exit 7.
        let withOld = try folder.makeDirectory("with-old")
        let old = try folder.makeDirectory("with-old/20000101T000000Z")
        try writeFile(old + "/backup_manifest", Array("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n]}\n".utf8))
        let archived = try listDirectory(archive)
        let retention = try runTool(Self.tool, base + ["-D", cluster.dataDirectory, "-o", withOld, "--keep", "2",
                                                        "--wal-archive", archive], environment: good)
        #expect(retention.status == 7, "\(retention)")
        #expect(retention.stderrLines == [
            "walferry-backup: error: could not find the start WAL location of the oldest kept backup in \"\(withOld)\"; no WAL was removed",
            "walferry-backup: hint: Its backup_manifest must hold a WAL-Ranges entry.",
        ])
        #expect(try listDirectory(withOld).filter { !$0.hasPrefix(".") }.count == 2)
        #expect(Set(archived).isSubset(of: Set(try listDirectory(archive))))
        // --keep 1 removes the old one.
        let retentionOnly = try runTool(Self.tool, base + ["-D", cluster.dataDirectory, "-o", withOld, "--keep", "1"], environment: good)
        #expect(retentionOnly.status == 0, "\(retentionOnly)")
        #expect(try listDirectory(withOld).filter { !$0.hasPrefix(".") }.count == 1)
        #expect(!entryExists(old))
    }
}
