// walferry-cleanup: a drop-in pg_archivecleanup. Parses the arguments and calls WalferryCore's
// runCleanup; every decision is made there.

import ArgumentParser
import WalferryCLI
import WalferryCore

import Glibc

struct CleanupCommand: WalferryCommand {
    static let programName = "walferry-cleanup"
    static let usageStatus = CleanupExitStatus.usage

    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: "Remove WAL files older than a given one from a PostgreSQL WAL archive.",
        usage: "walferry-cleanup [OPTION]... ARCHIVELOCATION OLDESTKEPTWALFILE",
        discussion: """
            Makes the same decision as pg_archivecleanup for every file, but goes through the whole \
            archive when a removal fails, reports every failure and exits 1.

            For use as archive_cleanup_command in postgresql.conf:
              archive_cleanup_command = 'walferry-cleanup /mnt/archive %r'
            For an archive filled with walferry-archive ... %f.bz2:
              archive_cleanup_command = 'walferry-cleanup -x .bz2 /mnt/archive %r'
            Or as a standalone archive cleaner:
              walferry-cleanup /mnt/archive 000000010000000000000010.00000020.backup

            Exit status: 0 done (also when nothing was removed), 1 a file could not be removed or the \
            archive could not be read, 2 usage error, missing archive location or invalid file name.
            """,
        helpNames: [.customShort("?"), .short, .long]
    )

    @Flag(name: [.customShort("b"), .customLong("clean-backup-history")],
          help: "Also remove backup history files (*.backup) older than OLDESTKEPTWALFILE.")
    var cleanBackupHistory = false

    @Flag(name: [.customShort("d"), .long], help: "Print debug messages on standard error.")
    var debug = false

    @Flag(name: [.customShort("n"), .customLong("dry-run")],
          help: "Print the path of each file that would be removed on standard output; remove nothing.")
    var dryRun = false

    @Option(name: [.customShort("x", allowingJoined: true), .customLong("strip-extension")],
            parsing: .unconditional,
            help: ArgumentHelp("Strip this extension, dot included (.bz2), before examining file names.",
                               valueName: "EXT"))
    var stripExtension: String?

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Argument(help: ArgumentHelp("The archive directory.", valueName: "ARCHIVELOCATION"))
    var archiveLocation: String?

    @Argument(help: ArgumentHelp("The oldest WAL file to keep (%r): a segment, .partial or .backup file name.",
                                 valueName: "OLDESTKEPTWALFILE"))
    var oldestKeptWALFile: String?

    @Argument(help: .hidden)
    var surplus: [String] = []

    func validate() throws {
        if version { return }
        guard archiveLocation != nil else { throw ValidationError("must specify archive location") }
        guard oldestKeptWALFile != nil else { throw ValidationError("must specify oldest kept WAL file") }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments") }
    }

    static func start() -> Never {
        parseAndRun(console: Console(program: programName))
    }

    func execute(console: Console) -> CleanupExitStatus {
        // validate() has made sure both are there.
        guard let location = archiveLocation, let oldest = oldestKeptWALFile else { return .usage }
        var request = CleanupRequest(archiveLocation: location, oldestKeptWALFile: oldest)
        request.stripExtension = stripExtension
        request.cleanBackupHistory = cleanBackupHistory
        request.debug = debug
        request.dryRun = dryRun
        return runCleanup(request, console: console, output: StandardOutput())
    }
}
