// The three tools the server starts once per WAL file, as one library, so that the same code runs
// from their own executables (development, tests) and from the multi-call binary the .deb installs
// (one copy of the statically linked Swift runtime instead of three). walferry-backup is not here:
// it links libpq, whose 28 shared libraries would cost every start of these tools ~7.5 ms.

import WalferryCore

import Glibc

public enum WalferryTool: String, CaseIterable, Sendable {
    case archive = "walferry-archive"
    case restore = "walferry-restore"
    case cleanup = "walferry-cleanup"

    /// Runs the tool on the process's arguments and exits with its documented status.
    public func run() -> Never {
        switch self {
        case .archive: ArchiveCommand.start()
        case .restore: RestoreCommand.start()
        case .cleanup: CleanupCommand.start()
        }
    }

    /// The tool a multi-call binary was started as: the last component of argv[0], as the shell or
    /// the server passed it (a symbolic link's own name, not its target's).
    public static func invoked(as argument0: String) -> WalferryTool? {
        let name = argument0.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? argument0
        return WalferryTool(rawValue: name)
    }

    /// The multi-call binary's entry: runs the tool named by argv[0], or explains and exits 127 when
    /// started under another name. Not knowing which tool it should be, it cannot know which status
    /// the server would read safely: in a targeted recovery's restore_command any status up to 125
    /// means "not in the archive" and ends the recovery early, so it answers as the shell does for a
    /// command that does not exist, which every server context treats as a hard failure.
    public static func runInvoked() -> Never {
        let argument0 = CommandLine.arguments.first ?? "walferry"
        if let tool = invoked(as: argument0) { tool.run() }
        let console = Console(program: "walferry")
        console.error("started as \"\(argument0)\", which is not the name of a walferry tool")
        let names = allCases.map(\.rawValue).joined(separator: ", ")
        console.hint("Run it through one of its names: \(names) (symbolic links to this file).")
        exit(127)
    }
}
