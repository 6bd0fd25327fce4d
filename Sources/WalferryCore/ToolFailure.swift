// The one failure type of every tool: an exit status from the tool's documented enum, a message in
// PostgreSQL's style, and hints.
//
// Like pgBackRest's error types (each carries the exit code the process ends with) and
// swift-argument-parser's ExitCode, except that the status is typed: a walferry-restore step can only
// fail with a RestoreExitStatus, and the compiler says so. Messages are lower case, name the file in
// double quotes and end with the reason (`could not open file "x": No such file or directory`); hints
// are full sentences that name the user's likely mistake.

/// A tool's documented exit statuses.
public protocol ToolExitStatus: RawRepresentable, Sendable where RawValue == Int32 {}

/// Why a step of a tool failed, and the status the tool exits with for it.
public struct ToolFailure<Status: ToolExitStatus>: Error, Sendable, CustomStringConvertible {
    public var status: Status
    public var message: String
    public var hints: [String]

    public init(_ status: Status, _ message: String, hints: [String] = []) {
        self.status = status
        self.message = message
        self.hints = hints
    }

    /// A failure with at most one hint.
    public init(_ status: Status, _ message: String, hint: String?) {
        self.init(status, message, hints: hint.map { [$0] } ?? [])
    }

    public var description: String { message }

    /// Prints the error and its hints.
    public func report(to console: Console) {
        console.error(message)
        for hint in hints { console.hint(hint) }
    }
}

public typealias ArchiveFailure = ToolFailure<ArchiveExitStatus>
public typealias RestoreFailure = ToolFailure<RestoreExitStatus>
public typealias BackupFailure = ToolFailure<BackupExitStatus>
public typealias CleanupFailure = ToolFailure<CleanupExitStatus>
