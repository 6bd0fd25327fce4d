// Argument parsing shared by the four tools: swift-argument-parser does the parsing, and this file
// turns its outcome into PostgreSQL-style messages and walferry's documented exit statuses.
//
// Like ParsableCommand.main(), except that a usage error exits with the status the tool documents
// (2 for walferry-cleanup, as pg_archivecleanup) instead of 64, and is printed as
// `tool: error: message` plus `tool: hint: Try "tool --help" for more information.`.

import ArgumentParser
import WalferryCore

import Glibc

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
