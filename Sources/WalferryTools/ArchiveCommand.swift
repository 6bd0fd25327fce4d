// walferry-archive: archive_command. Parses the arguments and calls WalferryCore's runArchive; every
// decision is made there.
//
// The server starts one process per WAL file, so the common command lines (the options below with
// separate values, then SOURCE and DEST) are read without ArgumentParser (WalferryCLI's
// QuickArguments); both readings go through ArchiveOptions' rules, so they accept the same arguments.

import ArgumentParser
import WalferryCLI
import WalferryCore

import Glibc

struct ArchiveCommand: WalferryCommand {
    static let programName = "walferry-archive"
    static let usageStatus = ArchiveExitStatus.usage

    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: "Copy a WAL file into the archive, durably, atomically and verified.",
        usage: "walferry-archive [OPTION]... SOURCE DEST",
        discussion: """
            For use as archive_command in postgresql.conf:
              archive_command = 'walferry-archive %p /mnt/archive/%f'
            or, to store the files compressed with bzip2:
              archive_command = 'walferry-archive %p /mnt/archive/%f.bz2'

            Exit status: 0 archived (or found archived with identical contents), 1 I/O error or \
            missing file or directory, 2 usage error, 3 archived before with different contents, \
            4 not a valid WAL segment, 5 archive of another cluster or without its identity record, \
            6 verification failed, 7 another process writes the same file. The server retries all of them.
            """,
        helpNames: [.short, .long]
    )

    @Option(help: ArgumentHelp("Permission bits of the archived file, in octal (default: SOURCE's).", valueName: "MODE"))
    var mode: String?

    @Option(name: [.customShort("j"), .long], help: "Threads for bzip2 compression (default: the CPUs online).")
    var jobs: Int?

    @Option(help: ArgumentHelp("Read the copy back from the storage (default) or from the page cache.", valueName: "storage|cache"))
    var verify: ArchiveRequest.Verification?

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Argument(help: ArgumentHelp("The file to archive: %p, its path under pg_wal.", valueName: "SOURCE"))
    var source: String?

    @Argument(help: ArgumentHelp("Its path in the archive: DIR/%f, or DIR/%f.bz2 to compress.", valueName: "DEST"))
    var destination: String?

    @Argument(help: .hidden)
    var surplus: [String] = []

    func validate() throws {
        if version { return }
        guard source != nil else { throw ValidationError("must specify the file to archive (SOURCE, %p)") }
        guard destination != nil else { throw ValidationError("must specify its path in the archive (DEST, /mnt/archive/%f)") }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments") }
        if let problem = options.problem { throw ValidationError(problem) }
    }

    /// The options, as the quick reading finds them too.
    var options: ArchiveOptions { ArchiveOptions(mode: mode, jobs: jobs, verify: verify) }

    static func start() -> Never {
        let console = Console(program: programName)
        // Interrupted by the server (shutdown): remove the temporary file and exit 1, never die by a signal.
        Interruption.install(.exit(status: ArchiveExitStatus.failure.rawValue), program: programName)
        if let quick = ArchiveOptions.quick(CommandLine.arguments.dropFirst()), quick.options.problem == nil {
            Glibc.exit(quick.options.archive(source: quick.source, destination: quick.destination, console: console).rawValue)
        }
        parseAndRun(console: console)
    }

    func execute(console: Console) -> ArchiveExitStatus {
        // validate() has made sure both are there.
        guard let source, let destination else { return .usage }
        return options.archive(source: source, destination: destination, console: console)
    }
}

extension ArchiveRequest.Verification: ExpressibleByArgument {}

/// walferry-archive's options, however they were read, and the rules they must follow.
struct ArchiveOptions {
    var mode: String?
    var jobs: Int?
    var verify: ArchiveRequest.Verification?

    /// Why these options cannot be used, or nil.
    var problem: String? {
        if let mode, ArchiveOptions.parsedMode(mode) == nil { return "invalid mode \"\(mode)\": give octal permission bits such as 0640" }
        return jobsProblem(jobs)
    }

    static func parsedMode(_ text: String) -> mode_t? {
        guard !text.isEmpty, text.count <= 5, let value = UInt32(text, radix: 8), value <= 0o7777 else { return nil }
        return mode_t(value)
    }

    /// The common command lines read without ArgumentParser; nil for anything else.
    static func quick(_ arguments: ArraySlice<String>) -> (options: ArchiveOptions, source: String, destination: String)? {
        guard let scan = QuickArguments.scan(arguments, flags: [], options: ["--mode": "--mode", "-j": "--jobs", "--jobs": "--jobs", "--verify": "--verify"],
                                             numeric: ["--jobs"]),
              scan.positional.count == 2 else { return nil }
        var options = ArchiveOptions(mode: scan.values["--mode"], jobs: scan.integer("--jobs"))
        if let verify = scan.values["--verify"] {
            guard let value = ArchiveRequest.Verification(rawValue: verify) else { return nil }
            options.verify = value
        }
        return (options, scan.positional[0], scan.positional[1])
    }

    /// Archives SOURCE to DEST with these options.
    func archive(source: String, destination: String, console: Console) -> ArchiveExitStatus {
        var request = ArchiveRequest(source: source, destination: destination)
        request.mode = mode.flatMap(ArchiveOptions.parsedMode)
        if let jobs { request.jobs = jobs }
        if let verify { request.verification = verify }
        return runArchive(request, console: console)
    }
}
