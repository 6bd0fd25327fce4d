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
        usage: """
            walferry-cleanup [OPTION]... ARCHIVELOCATION OLDESTKEPTWALFILE
              walferry-cleanup --register NAME ARCHIVELOCATION SEGMENT
              walferry-cleanup --forget-reader NAME ARCHIVELOCATION
              walferry-cleanup --list-readers ARCHIVELOCATION
            """,
        discussion: """
            Makes the same decision as pg_archivecleanup for every file, but goes through the whole \
            archive when a removal fails, reports every failure and exits 1.

            For use as archive_cleanup_command in postgresql.conf:
              archive_cleanup_command = 'walferry-cleanup /mnt/archive %r'
            For an archive filled with walferry-archive ... %f.bz2:
              archive_cleanup_command = 'walferry-cleanup -x .bz2 /mnt/archive %r'
            Or as a standalone archive cleaner:
              walferry-cleanup /mnt/archive 000000010000000000000010.00000020.backup

            Several standbys on one archive: register each before it starts, with its base \
            backup's start segment, then give each its name, so that no cleanup removes WAL that \
            another standby (or, with --backups, a kept backup) still needs:
              walferry-cleanup --register a /mnt/archive SEGMENT
              archive_cleanup_command = 'walferry-cleanup --reader a /mnt/archive %r'

            Exit status: 0 done (also when nothing was removed), 1 a file could not be removed, the \
            archive or a reader's record could not be read or written, or another cleanup held the \
            readers' lock too long, 2 usage error, missing archive location, invalid file name, \
            invalid or unknown reader name.
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

    @Option(name: .customLong("reader"), help: ArgumentHelp(
        "Record OLDESTKEPTWALFILE as this registered reader's, then keep what every reader needs.", valueName: "NAME"))
    var reader: String?

    @Option(name: .customLong("backups"), help: ArgumentHelp(
        "Also keep the WAL of every complete backup in this walferry-backup directory.", valueName: "DIR"))
    var backups: String?

    @Option(name: .customLong("reader-expiry"), help: ArgumentHelp(
        "Stop holding WAL for a reader silent this long: hours (36h) or days (7d, the default).", valueName: "AGE"))
    var readerExpiry: String?

    @Option(name: .customLong("register"), help: ArgumentHelp(
        "Register a new reader that needs WAL from SEGMENT on (its base backup's start segment).", valueName: "NAME"))
    var register: String?

    @Option(name: .customLong("forget-reader"), help: ArgumentHelp(
        "Remove a registered reader that is gone for good.", valueName: "NAME"))
    var forgetReader: String?

    @Flag(name: .customLong("list-readers"), help: "List the registered readers, their positions and ages.")
    var listReaders = false

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Argument(help: ArgumentHelp("The archive directory.", valueName: "ARCHIVELOCATION"))
    var archiveLocation: String?

    @Argument(help: ArgumentHelp("The oldest WAL file to keep (%r): a segment, .partial or .backup file name.",
                                 valueName: "OLDESTKEPTWALFILE"))
    var oldestKeptWALFile: String?

    @Argument(help: .hidden)
    var surplus: [String] = []

    /// The reader commands each take the archive and, for --register, a segment; they do not mix with
    /// each other or with a cleanup's options.
    private var readerCommand: String? {
        if register != nil { return "--register" }
        if forgetReader != nil { return "--forget-reader" }
        return listReaders ? "--list-readers" : nil
    }

    func validate() throws {
        if version { return }
        let commands = [register != nil, forgetReader != nil, listReaders].filter { $0 }.count
        guard commands <= 1 else { throw ValidationError("--register, --forget-reader and --list-readers cannot be combined") }
        if let command = readerCommand {
            let cleanupOptions = reader != nil || backups != nil || cleanBackupHistory || dryRun || stripExtension != nil
            guard !cleanupOptions else { throw ValidationError("\(command) cannot be combined with the options of a cleanup") }
            if command != "--list-readers", readerExpiry != nil {
                throw ValidationError("\(command) cannot be combined with --reader-expiry")
            }
        }
        if let readerExpiry, parseReaderExpiry(readerExpiry) == nil {
            throw ValidationError("invalid reader expiry \"\(readerExpiry)\": give hours (36h) or days (7d)")
        }
        guard archiveLocation != nil else { throw ValidationError("must specify archive location") }
        if readerCommand == "--forget-reader" || readerCommand == "--list-readers" {
            guard oldestKeptWALFile == nil, surplus.isEmpty else { throw ValidationError("too many command-line arguments") }
            return
        }
        guard oldestKeptWALFile != nil else {
            throw ValidationError(register != nil ? "must specify the segment the new reader needs first" : "must specify oldest kept WAL file")
        }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments") }
    }

    static func start() -> Never {
        parseAndRun(console: Console(program: programName))
    }

    func execute(console: Console) -> CleanupExitStatus {
        // validate() has made sure both are there.
        guard let location = archiveLocation else { return .usage }
        let expiry = readerExpiry.flatMap(parseReaderExpiry) ?? defaultReaderExpiry
        if let name = forgetReader { return WalferryCore.forgetReader(name, archiveLocation: location, console: console) }
        if listReaders {
            return WalferryCore.listReaders(archiveLocation: location, expiry: expiry, console: console, output: StandardOutput())
        }
        guard let oldest = oldestKeptWALFile else { return .usage }
        if let name = register {
            return registerReader(name, archiveLocation: location, oldestKeptWALFile: oldest, console: console)
        }
        if let reader, !ArchiveReaders.isValidName(reader) {
            let failure = ArchiveReaders.invalidName(reader)
            failure.report(to: console)
            return failure.status
        }
        var request = CleanupRequest(archiveLocation: location, oldestKeptWALFile: oldest)
        request.stripExtension = stripExtension
        request.cleanBackupHistory = cleanBackupHistory
        request.debug = debug
        request.dryRun = dryRun
        request.reader = reader
        request.backupsDirectory = backups
        request.readerExpiry = expiry
        return runCleanup(request, console: console, output: StandardOutput())
    }
}
