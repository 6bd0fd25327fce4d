// walferry-backup: a non-exclusive base backup of a running PostgreSQL server, written as parallel
// bzip2 tarballs, for cron. Parses the arguments, connects through WalferryPostgres, and calls
// WalferryCore's runBaseBackup; every decision is made there.

import ArgumentParser
import WalferryCLI
import WalferryCore
import WalferryPostgres

import Glibc

@main
struct BackupCommand: WalferryCommand {
    static let programName = "walferry-backup"
    static let usageStatus = BackupExitStatus.usage

    /// `-c, --checkpoint`.
    enum Checkpoint: String, ExpressibleByArgument, CaseIterable {
        /// An immediate checkpoint.
        case fast
        /// Paced by checkpoint_completion_target.
        case spread
    }

    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: "Take a base backup of a running PostgreSQL server as bzip2 tarballs.",
        usage: "walferry-backup [OPTION]... -o OUTPUT",
        discussion: """
            Runs pg_backup_start, copies the data directory (-D) with the server's own exclusions, \
            compresses it on every CPU, runs pg_backup_stop and writes backup_label, tablespace_map \
            and backup_manifest, so that the extracted backup passes pg_verifybackup.

            With -o DIR, each run writes DIR/<UTC timestamp>/ with base.tar.bz2, one <oid>.tar.bz2 \
            per tablespace and backup_manifest, visible only once complete and durable. With -o FILE \
            or -o -, a single tarball (no tablespaces) with backup_manifest inside.

            Nightly from the postgres user's crontab:
              15 2 * * * walferry-backup -D /var/lib/postgresql/15/main -o /mnt/backups \\
                --wal-archive /mnt/archive --keep 7

            Exit status: 0 backup complete and durable, 1 backup failed, 2 usage error, 3 server \
            unreachable or refused, 4 -D is not the server's data directory, 5 the backup's session \
            ended during the backup, 6 another run holds the lock, 7 backup complete but --keep \
            failed, 8 interrupted by a signal.
            """,
        helpNames: [.customShort("?"), .short, .long]
    )

    @Option(name: [.customShort("d"), .customLong("dbname")],
            help: ArgumentHelp("Connection string, URI or database name; PGHOST, PGPORT, PGUSER, PGPASSFILE... apply.",
                               valueName: "CONNINFO"))
    var conninfo: String?

    @Option(name: [.customShort("D"), .customLong("pgdata")],
            help: ArgumentHelp("The server's data directory (default: PGDATA).", valueName: "DIR"))
    var dataDirectory: String?

    @Option(name: [.customShort("o"), .customLong("output")],
            help: ArgumentHelp("A directory of backups, a tarball to create, or - for standard output.",
                               valueName: "OUTPUT"))
    var output: String?

    @Option(name: [.customShort("l"), .customLong("label")],
            help: ArgumentHelp("The backup label (default: walferry-backup <timestamp>).", valueName: "LABEL"))
    var label: String?

    @Option(name: [.customShort("c"), .customLong("checkpoint")],
            help: ArgumentHelp("fast: an immediate checkpoint; spread: paced by checkpoint_completion_target.",
                               valueName: "fast|spread"))
    var checkpoint = Checkpoint.spread

    @Option(name: .customLong("wal-archive"),
            help: ArgumentHelp("The WAL archive (%f or %f.bz2 files): copy the backup's WAL from it into the tarball's pg_wal, and prune it with --keep.",
                               valueName: "DIR"))
    var walArchive: String?

    @Option(name: .customLong("keep"),
            help: ArgumentHelp("Keep the newest N backups in the -o directory and remove older ones (and their WAL with --wal-archive).",
                               valueName: "N"))
    var keep: Int?

    @Option(name: [.customShort("j"), .customLong("jobs")],
            help: ArgumentHelp("Compression threads (default: the number of CPUs).", valueName: "N"))
    var jobs: Int?

    @Option(name: [.customShort("Z"), .customLong("compress-level")],
            help: ArgumentHelp("bzip2 level, 1 to 9.", valueName: "LEVEL"))
    var level = 9

    @Flag(name: [.customShort("P"), .long], help: "Show progress even when standard error is not a terminal.")
    var progress = false

    @Flag(name: [.customShort("v"), .long], help: "Say what is done; by default a successful run prints nothing.")
    var verbose = false

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Argument(help: .hidden)
    var surplus: [String] = []

    func validate() throws {
        if version { return }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments (first is \"\(surplus[0])\")") }
        guard output != nil else { throw ValidationError("no output given: use -o DIR, -o FILE or -o -") }
        guard dataDirectory ?? environment("PGDATA") != nil else {
            throw ValidationError("no data directory given: use -D or set PGDATA")
        }
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1") }
        if let problem = jobsProblem(jobs) { throw ValidationError(problem) }
        guard (1...9).contains(level) else { throw ValidationError("-Z/--compress-level must be between 1 and 9") }
        if let label {
            guard label.utf8.count <= 1024 else { throw ValidationError("backup label too long (max 1024 bytes)") }
            // The server reads backup_label line by line: a newline in the label would break it.
            guard !label.contains("\n"), !label.contains("\r") else { throw ValidationError("backup label must not contain a newline") }
        }
    }

    static func main() {
        parseAndRun(console: Console(program: programName))
    }

    func execute(console: Console) -> BackupExitStatus {
        // validate() has made sure both are there.
        guard let output, let dataDirectory = dataDirectory ?? environment("PGDATA") else { return .usage }
        var request = BackupRequest(dataDirectory: dataDirectory, output: output)
        request.label = label
        request.fastCheckpoint = checkpoint == .fast
        request.walArchive = walArchive
        request.keep = keep
        request.jobs = jobs ?? BZip2.defaultJobs
        request.compressionLevel = level
        request.verbose = verbose
        request.forceProgress = progress
        // For walferry's own tests only: slows the copy down so that a test can act mid-backup.
        if let delay = environment("WALFERRY_BACKUP_TEST_DELAY_MS").flatMap({ UInt32($0) }) {
            request.testDelayPerFileMicroseconds = delay &* 1000
        }
        let verbose = verbose, conninfo = conninfo
        return runBaseBackup(request, console: console) { () throws(BackupFailure) in
            try PostgresBackupServer(conninfo: conninfo) { notice in
                printNotice(notice, console: console, verbose: verbose)
            }
        }
    }
}

/// A server notice: WARNINGs always (the stop's "still waiting for all required WAL segments to be
/// archived" must reach cron's mail), NOTICEs only with -v, FATALs never (the failure they cause is
/// reported with them).
private func printNotice(_ notice: String, console: Console, verbose: Bool) {
    let lines = notice.split(separator: "\n").map { String($0.drop { $0 == " " || $0 == "\t" }) }
    guard let first = lines.first else { return }
    func text(_ line: String, after prefix: String) -> String {
        String(line.dropFirst(prefix.count).drop { $0 == " " })
    }
    if first.hasPrefix("WARNING:") {
        console.warning("server: " + text(first, after: "WARNING:"))
    } else if first.hasPrefix("NOTICE:") || first.hasPrefix("INFO:") {
        guard verbose else { return }
        console.info("server: " + text(first, after: first.hasPrefix("INFO:") ? "INFO:" : "NOTICE:"))
    } else {
        return
    }
    for line in lines.dropFirst() where line.hasPrefix("HINT:") { console.hint(text(line, after: "HINT:")) }
}

/// An environment variable, or nil when unset or empty.
private func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let text = String(cString: value)
    return text.isEmpty ? nil : text
}
