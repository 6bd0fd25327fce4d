// walferry-recover: a data directory from a walferry backup, ready to start as a standby or as a
// point-in-time recovery, in one command. Parses the arguments and calls WalferryCore's runRecover;
// every decision is made there. It does not connect to any server, so it does not link libpq.

import ArgumentParser
import WalferryCLI
import WalferryCore

import Glibc

@main
struct RecoverCommand: WalferryCommand {
    static let programName = "walferry-recover"
    static let usageStatus = RecoverExitStatus.usage

    /// `--target-action`.
    enum TargetAction: String, ExpressibleByArgument, CaseIterable {
        case promote, pause, shutdown
    }

    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: "Make a standby or a point-in-time recovery from a walferry backup.",
        usage: "walferry-recover -B BACKUPS -D DATADIR (--standby | --pitr) [OPTION]...",
        discussion: """
            Chooses a complete backup in BACKUPS (a walferry-backup output directory, one backup's \
            directory or a single tarball): the newest, --backup ID, or the newest that ended before \
            a --target-time or --target-lsn. Refuses a DATADIR that is not empty (unless --force) or \
            that a server runs in, and a backup off the target timeline's history or without the WAL \
            it needs. Extracts it into a temporary sibling of DATADIR, checks every file against \
            backup_manifest as it is written, fsyncs everything, writes the signal file and one marked \
            block of settings in postgresql.auto.conf, and renames it into place.

            A standby that streams and falls back to the archive:
              walferry-recover -B /mnt/backups -D /var/lib/postgresql/15/main --standby \\
                --wal-archive /mnt/archive --primary-conninfo 'host=primary user=replicator'

            Exit status: 0 recovered, 1 read or write error (a full disk included), 2 usage error, \
            3 the backup failed verification, 4 refused (target not empty, server running, \
            tablespace directory not empty, target a mount point), 5 no backup to recover from, \
            6 the backup cannot reach the target (timeline, missing WAL), 7 interrupted by a signal. \
            Nothing is ever left under DATADIR's name on failure.
            """,
        helpNames: [.customShort("?"), .short, .long]
    )

    @Option(name: [.customShort("B"), .customLong("backups")],
            help: ArgumentHelp("walferry-backup's output directory, one backup directory, or a single tarball.", valueName: "BACKUPS"))
    var backups: String?

    @Option(name: [.customShort("D"), .customLong("pgdata")],
            help: ArgumentHelp("The data directory to create (default: PGDATA).", valueName: "DATADIR"))
    var dataDirectory: String?

    @Option(name: .customLong("backup"), help: ArgumentHelp("Recover this backup (its directory's name).", valueName: "ID"))
    var backupID: String?

    @Flag(help: "Make a standby: standby.signal.")
    var standby = false

    @Flag(help: "Make a point-in-time recovery: recovery.signal, with a target if given.")
    var pitr = false

    @Option(name: .customLong("wal-archive"),
            help: ArgumentHelp("The WAL archive: restore_command reads it through walferry-restore.", valueName: "DIR"))
    var walArchive: String?

    @Option(name: .customLong("reader"), help: ArgumentHelp(
        "Register the new server as this reader of --wal-archive before it is in place (walferry-cleanup --reader; for a standby, its archive_cleanup_command).",
        valueName: "NAME"))
    var reader: String?

    @Option(name: .customLong("primary-conninfo"),
            help: ArgumentHelp("primary_conninfo, for a standby that streams from its primary.", valueName: "CONNINFO"))
    var primaryConninfo: String?

    @Option(name: .customLong("target-time"),
            help: ArgumentHelp("Stop at this time, with its zone: '2026-11-27 06:00:00+00'.", valueName: "TIME"))
    var targetTime: String?

    @Option(name: .customLong("target-lsn"), help: ArgumentHelp("Stop at this WAL location.", valueName: "LSN"))
    var targetLSN: String?

    @Option(name: .customLong("target-xid"), help: ArgumentHelp("Stop at this transaction.", valueName: "XID"))
    var targetXID: String?

    @Option(name: .customLong("target-name"), help: ArgumentHelp("Stop at this restore point.", valueName: "NAME"))
    var targetName: String?

    @Flag(name: .customLong("target-immediate"), help: "Stop as soon as the backup is consistent.")
    var targetImmediate = false

    @Option(name: .customLong("target-action"),
            help: ArgumentHelp("What to do at the target (default: the server's, pause).", valueName: "promote|pause|shutdown"))
    var targetAction: TargetAction?

    @Option(name: .customLong("target-timeline"),
            help: ArgumentHelp("The timeline to recover along: latest (default), current or a number.", valueName: "TLI"))
    var targetTimeline: String?

    @Flag(name: .customLong("keep-archiving"), help: "Leave archive_mode as the backup has it (--pitr sets it off).")
    var keepArchiving = false

    @Option(name: [.customShort("T"), .customLong("tablespace-mapping")],
            help: ArgumentHelp("Put the tablespace at OLDDIR in NEWDIR instead.", valueName: "OLDDIR=NEWDIR"))
    var tablespaceMappings: [String] = []

    @Option(name: .customLong("owner"),
            help: ArgumentHelp("Run as root: give the files to USER (default: the owner of DATADIR's parent).", valueName: "USER"))
    var owner: String?

    @Flag(name: .customLong("force"), help: "Replace a DATADIR that is not empty; the old one is moved to a named sibling, never deleted.")
    var force = false

    @Option(name: [.customShort("j"), .customLong("jobs")],
            help: ArgumentHelp("Decompression threads (default: the number of CPUs).", valueName: "N"))
    var jobs: Int?

    @Flag(name: [.customShort("P"), .long], help: "Show progress.")
    var progress = false

    @Flag(name: [.customShort("v"), .long], help: "Say what is done; by default a successful run prints nothing unless on a terminal.")
    var verbose = false

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Argument(help: .hidden)
    var surplus: [String] = []

    var targets: [String] {
        [targetTime.map { _ in "--target-time" }, targetLSN.map { _ in "--target-lsn" }, targetXID.map { _ in "--target-xid" },
         targetName.map { _ in "--target-name" }, targetImmediate ? "--target-immediate" : nil].compactMap { $0 }
    }

    func validate() throws {
        if version { return }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments (first is \"\(surplus[0])\")") }
        guard backups != nil else { throw ValidationError("no backup given: use -B BACKUPS") }
        guard dataDirectory ?? environment("PGDATA") != nil else {
            throw ValidationError("no data directory given: use -D or set PGDATA")
        }
        guard standby != pitr else { throw ValidationError("give exactly one of --standby and --pitr") }
        if standby, let first = targets.first { throw ValidationError("\(first) needs --pitr") }
        if standby, targetAction != nil { throw ValidationError("--target-action needs --pitr") }
        if pitr, primaryConninfo != nil { throw ValidationError("--primary-conninfo needs --standby") }
        guard targets.count <= 1 else { throw ValidationError("give at most one recovery target (\(targets.joined(separator: ", ")))") }
        if let targetTime, parseTargetTime(targetTime) == nil {
            throw ValidationError("invalid --target-time \"\(targetTime)\": give it as 'YYYY-MM-DD HH:MM:SS+HH' with its time zone")
        }
        if let targetLSN, parseLSN(targetLSN) == nil { throw ValidationError("invalid --target-lsn \"\(targetLSN)\"") }
        if let targetXID, UInt64(targetXID) == nil { throw ValidationError("invalid --target-xid \"\(targetXID)\"") }
        if let targetTimeline, targetTimeline != "latest", targetTimeline != "current", (UInt32(targetTimeline) ?? 0) == 0 {
            throw ValidationError("invalid --target-timeline \"\(targetTimeline)\": must be latest, current or a timeline number")
        }
        for text in [primaryConninfo, targetName, backupID].compactMap({ $0 }) where text.contains("\n") || text.contains("\r") {
            throw ValidationError("option values must not contain a newline")
        }
        for mapping in tablespaceMappings {
            if case .failure(let error) = TablespaceMapping.parse(mapping) { throw ValidationError(error.message) }
        }
        if let problem = jobsProblem(jobs) { throw ValidationError(problem) }
        if let reader {
            guard walArchive != nil else { throw ValidationError("--reader needs --wal-archive") }
            guard ArchiveReaders.isValidName(reader) else {
                throw ValidationError("invalid reader name \"\(reader)\": use 1 to 64 letters, digits, \"-\", \"_\" or \".\", not starting with \".\"")
            }
        }
    }

    static func main() {
        parseAndRun(console: Console(program: programName))
    }

    func execute(console: Console) -> RecoverExitStatus {
        guard let backups, let dataDirectory = dataDirectory ?? environment("PGDATA") else { return .usage }
        var request = RecoverRequest(backupSource: backups, dataDirectory: dataDirectory, mode: standby ? .standby : .targeted)
        request.backupID = backupID
        if let targetTime {
            request.target = .time(targetTime)
            request.targetTimeSeconds = parseTargetTime(targetTime)
        } else if let lsn = targetLSN.flatMap(parseLSN) {
            request.target = .lsn(lsn)
        } else if let targetXID {
            request.target = .xid(targetXID)
        } else if let targetName {
            request.target = .name(targetName)
        } else if targetImmediate {
            request.target = .immediate
        }
        request.targetAction = targetAction?.rawValue
        request.targetTimeline = targetTimeline
        request.walArchive = walArchive
        request.primaryConninfo = primaryConninfo
        request.keepArchiving = keepArchiving
        request.tablespaceMappings = tablespaceMappings.compactMap { try? TablespaceMapping.parse($0).get() }
        request.owner = owner
        request.force = force
        request.jobs = jobs ?? BZip2.defaultJobs
        request.verbose = verbose
        request.forceProgress = progress
        request.restoreProgram = siblingProgram("walferry-restore")
        request.cleanupProgram = siblingProgram("walferry-cleanup")
        request.reader = reader
        return runRecover(request, console: console)
    }
}

/// The tool `name` next to this executable when it is there (the package's /usr/bin, a build
/// directory), else by name through PATH.
private func siblingProgram(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return name }
    let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let slash = path.lastIndex(of: "/") else { return name }
    let candidate = String(path[..<slash]) + "/" + name
    return access(candidate, X_OK) == 0 ? candidate : name
}

/// An environment variable, or nil when unset or empty.
private func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let text = String(cString: value)
    return text.isEmpty ? nil : text
}
