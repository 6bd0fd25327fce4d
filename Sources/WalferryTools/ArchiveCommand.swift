// walferry-archive: archive_command. Parses the arguments and calls WalferryCore's runArchive; every
// decision is made there.

import ArgumentParser
import WalferryCLI
import WalferryCore

import Glibc

struct ArchiveCommand: ParsableCommand {
    static let programName = "walferry-archive"

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
    var verify: String?

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
        if let mode, parsedMode(mode) == nil { throw ValidationError("invalid mode \"\(mode)\": give octal permission bits such as 0640") }
        if let jobs, jobs < 1 || jobs > 256 { throw ValidationError("invalid number of jobs \(jobs): must be between 1 and 256") }
        if let verify, ArchiveRequest.Verification(rawValue: verify) == nil {
            throw ValidationError("invalid --verify \"\(verify)\": give storage or cache")
        }
    }

    func parsedMode(_ text: String) -> mode_t? {
        guard !text.isEmpty, text.count <= 5, let value = UInt32(text, radix: 8), value <= 0o7777 else { return nil }
        return mode_t(value)
    }

    static func start() -> Never {
        let console = Console(program: programName)
        // Interrupted by the server (shutdown): remove the temporary file and exit 1, never die by a signal.
        Interruption.install(exitStatus: ArchiveExitStatus.failure.rawValue)
        let command = parseArguments(Self.self, console: console, usageStatus: ArchiveExitStatus.usage.rawValue)
        if command.version { printVersionAndExit(program: programName) }
        guard let source = command.source, let destination = command.destination else {
            Glibc.exit(ArchiveExitStatus.usage.rawValue)  // validate() has already said why
        }
        var request = ArchiveRequest(source: source, destination: destination)
        request.mode = command.mode.flatMap(command.parsedMode)
        if let jobs = command.jobs { request.jobs = jobs }
        if let verify = command.verify.flatMap(ArchiveRequest.Verification.init(rawValue:)) { request.verification = verify }
        Glibc.exit(runArchive(request, console: console).rawValue)
    }
}
