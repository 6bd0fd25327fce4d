// walferry-restore: restore_command. Parses the arguments and calls WalferryCore's runRestore; every
// decision is made there.
//
// The server starts one process per file, so start-up counts: the common command lines (the options
// below, then SOURCE and DEST) are read without ArgumentParser (WalferryCLI's QuickArguments), because
// its reflection costs about 1.5 ms a start, a quarter of what cp takes to restore a segment.
// Anything else (help, version, an error, an unusual spelling) goes through ArgumentParser, which
// makes every message; the validation rules are shared, so both paths accept the same arguments.

import ArgumentParser
import WalferryCLI
import WalferryCore

import Glibc

struct RestoreCommand: WalferryCommand {
    static let programName = "walferry-restore"
    /// In targeted recovery 200; on a standby 1, so that the server retries.
    static var usageStatus: RestoreExitStatus { .usage.inMode(modeBeforeParsing().mode) }

    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: "Fetch a WAL file from the archive for the server, verified, atomically.",
        usage: "walferry-restore [OPTION]... SOURCE DEST",
        discussion: """
            For use as restore_command in postgresql.conf, on a standby:
              restore_command = 'walferry-restore --standby /mnt/archive/%f %p'
            and for a point-in-time recovery:
              restore_command = 'walferry-restore --pitr /mnt/archive/%f %p'
            Files archived as %f.bz2 are found and decompressed without further ado.

            Exit status: 0 restored, 1 not in the archive. Any other failure: 1 on a standby (the server \
            retries), and in targeted recovery 200 usage error, 201 I/O error or missing archive \
            directory, 202 the archived file failed verification, 203 missing or foreign archive \
            identity record (the server stops instead of ending recovery early).

            Without --standby or --pitr, standby.signal in the working directory (or, before \
            PostgreSQL 12, standby_mode = on in recovery.conf) means standby, anything else targeted \
            recovery.
            """,
        helpNames: [.short, .long]
    )

    @Flag(help: "Standby mode: any failure exits 1, which the server retries.")
    var standby = false

    @Flag(help: "Targeted (point-in-time) recovery: any failure but \"not in the archive\" is fatal.")
    var pitr = false

    @Flag(help: "When a segment is not in the archive, deliver its .partial file if there is one.")
    var partial = false

    @Option(help: ArgumentHelp("Fetch the next N segments in the background into the spool (1 to \(maximumPrefetch)).", valueName: "N"))
    var prefetch: Int?

    @Option(help: ArgumentHelp("The prefetch spool: a directory outside the data directory, on pg_wal's file system.", valueName: "DIR"))
    var spool: String?

    @Option(name: [.customShort("j"), .long], help: "Threads for bzip2 decompression (default: the CPUs online).")
    var jobs: Int?

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Flag(help: .hidden)
    var prefetchWorker = false

    @Argument(help: ArgumentHelp("The file's path in the archive: DIR/%f (or DIR/%f.bz2 to look for that form first).", valueName: "SOURCE"))
    var source: String?

    @Argument(help: ArgumentHelp("Where the server wants it: %p.", valueName: "DEST"))
    var destination: String?

    @Argument(help: .hidden)
    var surplus: [String] = []

    func validate() throws {
        if version { return }
        guard source != nil else { throw ValidationError("must specify the file to restore (SOURCE, /mnt/archive/%f)") }
        if prefetchWorker { return }
        guard destination != nil else { throw ValidationError("must specify where to restore it (DEST, %p)") }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments") }
        if let problem = options.problem { throw ValidationError(problem) }
    }

    /// The options, as the quick path reads them too.
    var options: RestoreOptions {
        RestoreOptions(standby: standby, pitr: pitr, partial: partial, prefetch: prefetch, spool: spool, jobs: jobs)
    }

    /// The mode as far as it can be known before the arguments are parsed, for the exit status of a
    /// usage error: an explicit flag among the raw arguments, else the signal files.
    static func modeBeforeParsing() -> RecoveryModeDecision {
        let arguments = CommandLine.arguments.dropFirst()
        let standby = arguments.contains("--standby"), pitr = arguments.contains("--pitr")
        if standby != pitr { return .decide(explicit: standby ? .standby : .targeted) }
        return .decide(explicit: nil)
    }

    static func start() -> Never {
        let console = Console(program: programName)
        // Interrupted by the server (shutdown): remove the temporary file and die by the same signal,
        // which the startup process reads as a shutdown, never as "not in the archive".
        Interruption.install(.reraise, program: programName)
        if let quick = RestoreOptions.quick(CommandLine.arguments.dropFirst()), quick.options.problem == nil {
            Glibc.exit(quick.options.restore(source: quick.source, destination: quick.destination, console: console).rawValue)
        }
        parseAndRun(console: console)
    }

    func execute(console: Console) -> RestoreExitStatus {
        // validate() has made sure that SOURCE, and DEST but for the worker, are there.
        guard let source else { return Self.usageStatus }
        if prefetchWorker {
            guard let spool else { return .notAvailable }
            let status = runPrefetchWorker(source: source, spool: spool, count: prefetch ?? 1, jobs: jobs ?? BZip2.defaultJobs)
            return RestoreExitStatus(rawValue: status) ?? .notAvailable
        }
        guard let destination else { return Self.usageStatus }
        return options.restore(source: source, destination: destination, console: console)
    }
}

/// The options of a restore, however they were parsed, and the rules they must follow.
struct RestoreOptions {
    var standby = false
    var pitr = false
    var partial = false
    var prefetch: Int?
    var spool: String?
    var jobs: Int?

    /// Why these options cannot be used together, or nil.
    var problem: String? {
        if standby && pitr { return "--standby and --pitr cannot be used together" }
        if let problem = jobsProblem(jobs) { return problem }
        if let prefetch {
            guard prefetch >= 1 && prefetch <= maximumPrefetch else {
                return "invalid number of segments to prefetch \(prefetch): must be between 1 and \(maximumPrefetch)"
            }
            guard spool != nil else { return "--prefetch needs --spool DIR" }
        }
        if let spool {
            guard prefetch != nil else { return "--spool needs --prefetch N" }
            guard spool.hasPrefix("/") else { return "the prefetch spool \"\(spool)\" must be an absolute path" }
            if spoolIsInsideWorkingDirectory(spool) { return "the prefetch spool \"\(spool)\" must be outside the data directory" }
        }
        return nil
    }

    /// The common command lines read without ArgumentParser; nil for anything else.
    static func quick(_ arguments: ArraySlice<String>) -> (options: RestoreOptions, source: String, destination: String)? {
        guard let scan = QuickArguments.scan(arguments, flags: ["--standby", "--pitr", "--partial"],
                                             options: ["--prefetch": "--prefetch", "--spool": "--spool", "-j": "--jobs", "--jobs": "--jobs"],
                                             numeric: ["--prefetch", "--jobs"]),
              scan.positional.count == 2 else { return nil }
        let options = RestoreOptions(standby: scan.flags.contains("--standby"), pitr: scan.flags.contains("--pitr"),
                                     partial: scan.flags.contains("--partial"), prefetch: scan.integer("--prefetch"),
                                     spool: scan.values["--spool"], jobs: scan.integer("--jobs"))
        return (options, scan.positional[0], scan.positional[1])
    }

    /// Restores SOURCE to DEST with these options.
    func restore(source: String, destination: String, console: Console) -> RestoreExitStatus {
        let explicit: RecoveryMode? = standby ? .standby : pitr ? .targeted : nil
        var request = RestoreRequest(source: source, destination: destination, mode: .decide(explicit: explicit))
        request.partial = partial
        request.prefetch = prefetch ?? 0
        request.spool = spool
        if let jobs { request.jobs = jobs }
        return runRestore(request, console: console)
    }

    /// True when `spool` is the working directory (the data directory when the server calls) or
    /// below it: a spool there would be copied by base backups and broken by pg_rewind.
    func spoolIsInsideWorkingDirectory(_ spool: String) -> Bool {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return false }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard cwd != "/" else { return false }
        return spool == cwd || spool.hasPrefix(cwd + "/")
    }
}
