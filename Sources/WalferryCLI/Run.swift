// How every tool's command line starts: swift-argument-parser does the parsing, and this file turns
// its outcome into PostgreSQL-style messages and walferry's documented exit statuses.
//
// Like ParsableCommand.main(), except that:
// - a usage error exits with the status the tool documents (2 for walferry-cleanup, as
//   pg_archivecleanup; 200 for walferry-restore in targeted recovery) instead of 64, and is printed
//   as `tool: error: message` plus `tool: hint: Try "tool --help" for more information.`;
// - the run itself returns the tool's exit-status enum, never throws;
// - the tools the server starts once per WAL file read their common command lines with a few lines
//   of their own first (QuickArguments), because swift-argument-parser's reflection costs about
//   1.5 ms a start; anything else goes through ArgumentParser, which makes every message.

import ArgumentParser
import WalferryCore

import Glibc

/// A walferry tool's command line.
public protocol WalferryCommand: ParsableCommand {
    associatedtype Status: ToolExitStatus
    /// The name every message starts with.
    static var programName: String { get }
    /// The status a usage error exits with.
    static var usageStatus: Status { get }
    /// `-V, --version`.
    var version: Bool { get }
    /// Runs the parsed command line and returns the status to exit with.
    func execute(console: Console) -> Status
}

extension WalferryCommand {
    /// Parses the process's arguments with ArgumentParser, answers --help and --version, runs the
    /// command, and exits with its status.
    public static func parseAndRun(console: Console) -> Never {
        let command = parseArguments(Self.self, console: console, usageStatus: usageStatus.rawValue)
        if command.version { printVersionAndExit(program: programName) }
        Glibc.exit(command.execute(console: console).rawValue)
    }
}

/// The most threads `-j/--jobs` accepts, in every tool.
public let maximumJobs = 256

/// Why `-j/--jobs` is out of range, or nil.
public func jobsProblem(_ jobs: Int?) -> String? {
    guard let jobs, !(1...maximumJobs).contains(jobs) else { return nil }
    return "invalid number of jobs \(jobs): must be between 1 and \(maximumJobs)"
}

/// Parses the process's arguments as `Command`. Help and version requests are printed here and end
/// the process with status 0; a usage error is printed and ends it with `usageStatus`.
public func parseArguments<Command: ParsableArguments>(_ type: Command.Type, console: Console, usageStatus: Int32) -> Command {
    do {
        return try Command.parse()
    } catch {
        if Command.exitCode(for: error) == .success {
            let output = StandardOutput()
            output.write(Command.fullMessage(for: error) + "\n")
            output.flush()
            exit(0)
        }
        console.error(lowercasingFirstLetter(Command.message(for: error)))
        console.hint(console.tryHelpHint)
        exit(usageStatus)
    }
}

/// Prints `tool (walferry) VERSION` on standard output and exits 0.
public func printVersionAndExit(program: String) -> Never {
    let output = StandardOutput()
    output.write("\(program) (walferry) \(walferryVersion)\n")
    output.flush()
    exit(0)
}

/// PostgreSQL's messages start in lower case; argument-parser's start with a capital.
func lowercasingFirstLetter(_ text: String) -> String {
    guard let first = text.first, first.isUppercase else { return text }
    // Keep acronyms as they are: only a capital followed by a lower-case letter is lowered.
    guard text.dropFirst().first.map({ $0.isLowercase }) ?? true else { return text }
    return first.lowercased() + text.dropFirst()
}

/// A common command line read without ArgumentParser: known flags, known options each followed by a
/// separate value, and positional arguments. Nil for anything else (a joined value, `--opt=value`, a
/// value that looks like an option, an option given twice, an unknown option), which ArgumentParser
/// then reads and reports on.
public struct QuickArguments {
    public private(set) var flags: Set<String> = []
    /// Option values, by the option's long name.
    public private(set) var values: [String: String] = [:]
    public private(set) var positional: [String] = []

    /// `options` maps each spelling (`-j`, `--jobs`) to the option's long name (`--jobs`); the values
    /// of the options named in `numeric` must be integers.
    public static func scan(_ arguments: ArraySlice<String>, flags: Set<String>, options: [String: String],
                            numeric: Set<String> = []) -> QuickArguments? {
        var result = QuickArguments()
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if flags.contains(argument) {
                result.flags.insert(argument)
            } else if let name = options[argument] {
                guard let value = rest.popFirst(), !value.hasPrefix("-"), result.values[name] == nil else { return nil }
                if numeric.contains(name) && Int(value) == nil { return nil }
                result.values[name] = value
            } else {
                guard !argument.hasPrefix("-") else { return nil }
                result.positional.append(argument)
            }
        }
        return result
    }

    /// A numeric option's value (see `scan`), or nil when it was not given.
    public func integer(_ name: String) -> Int? { values[name].flatMap { Int($0) } }
}
