// Running the built executables, and any other program, and capturing what they did.
//
// Like swift-argument-parser's AssertExecuteCommand, but it returns the outcome (status, stdout,
// stderr, whether a signal ended the process) for the test to assert on exactly, and it can run a
// program as another user (runuser) for the cases that need a non-root user.

import Foundation

/// How a process ended and what it printed.
public struct ProcessOutcome: Sendable, CustomStringConvertible {
    /// The exit status, or the signal number when `signaled`.
    public let status: Int32
    public let signaled: Bool
    public let stdout: String
    public let stderr: String
    /// Standard output as raw bytes.
    public let stdoutBytes: [UInt8]

    public var description: String {
        "\(signaled ? "signal" : "status") \(status)\nstdout:\n\(stdout)stderr:\n\(stderr)"
    }

    /// The lines of standard output (without their newlines).
    public var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
    /// The lines of standard error (without their newlines).
    public var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
}

/// Runs `executable` with `arguments` and waits for it. Standard input is /dev/null unless `input`
/// is given.
public func runProcess(_ executable: String, _ arguments: [String], workingDirectory: String? = nil,
                       environment: [String: String]? = nil, input: [UInt8]? = nil) throws -> ProcessOutcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
    if let environment { process.environment = environment }
    let outPipe = Pipe(), errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    let inPipe: Pipe?
    if input != nil {
        inPipe = Pipe()
        process.standardInput = inPipe
    } else {
        inPipe = nil
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    if let inPipe, let input {
        try inPipe.fileHandleForWriting.write(contentsOf: Data(input))
        try inPipe.fileHandleForWriting.close()
    }
    // Read both pipes to the end concurrently: a child that fills one pipe while we wait on the other
    // would otherwise block forever.
    let errorData = LockedBox(Data())
    let finished = DispatchSemaphore(value: 0)
    let errorHandle = errPipe.fileHandleForReading
    Thread {
        errorData.set(errorHandle.readDataToEndOfFile())
        finished.signal()
    }.start()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    finished.wait()
    process.waitUntilExit()
    let err = errorData.value
    return ProcessOutcome(status: process.terminationStatus,
                          signaled: process.terminationReason == .uncaughtSignal,
                          stdout: String(decoding: out, as: UTF8.self),
                          stderr: String(decoding: err, as: UTF8.self),
                          stdoutBytes: [UInt8](out))
}

/// A value written once by one thread and read by another.
final class LockedBox<Value>: @unchecked Sendable {
    // @unchecked: every access goes through the lock.
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    func set(_ value: Value) { lock.withLock { stored = value } }
    var value: Value { lock.withLock { stored } }
}

/// Where the package's executables were built: `WALFERRY_BIN_DIR`, or the folder that holds the test
/// bundle (`swift test` puts both in .build/debug).
public let builtProductsDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["WALFERRY_BIN_DIR"], !dir.isEmpty { return dir }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // The bundle may be a folder (walferryPackageTests.xctest/...) rather than a file.
    while url.path.contains(".xctest") { url = url.deletingLastPathComponent() }
    return url.path
}()

/// The path of one of walferry's built executables, such as "walferry-cleanup".
public func walferryTool(_ name: String) -> String { builtProductsDirectory + "/" + name }

/// Runs one of walferry's executables.
public func runTool(_ name: String, _ arguments: [String], workingDirectory: String? = nil,
                    environment: [String: String]? = nil, input: [UInt8]? = nil) throws -> ProcessOutcome {
    try runProcess(walferryTool(name), arguments, workingDirectory: workingDirectory, environment: environment, input: input)
}

/// True when the tests run as root (as CI does).
public var runningAsRoot: Bool { geteuid() == 0 }

/// Runs a program as the `postgres` operating-system user when the tests run as root (through
/// runuser), and as the current user otherwise.
public func runAsPostgresUser(_ executable: String, _ arguments: [String], workingDirectory: String? = nil,
                              environment: [String: String]? = nil) throws -> ProcessOutcome {
    if runningAsRoot {
        return try runProcess("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments,
                              workingDirectory: workingDirectory, environment: environment)
    }
    return try runProcess(executable, arguments, workingDirectory: workingDirectory, environment: environment)
}

/// Gives `path` (and, with `recursive`, everything below it) to the postgres user when running as root.
public func handToPostgresUser(_ path: String, recursive: Bool = true) throws {
    guard runningAsRoot else { return }
    let outcome = try runProcess("/bin/chown", (recursive ? ["-R"] : []) + ["postgres:postgres", path])
    guard outcome.status == 0 else { throw TestFailure("chown postgres \(path) failed: \(outcome)") }
}

/// A copy of walferry's executables that the postgres user can run.
///
/// The server runs archive_command and friends as postgres, and the checkout may sit under a folder
/// that user cannot enter (CI clones into root's home). When running as root the executables are
/// linked (or, across file systems, copied) once per test process into a world-readable folder;
/// otherwise the build folder is used.
public let postgresReachableToolDirectory: String = {
    guard runningAsRoot else { return builtProductsDirectory }
    let dir = "/tmp/walferry-test-bin-\(getpid())"
    let fm = FileManager.default
    try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    chmod(dir, 0o755)
    for tool in ["walferry-archive", "walferry-restore", "walferry-cleanup", "walferry-backup"] {
        let source = builtProductsDirectory + "/" + tool
        let target = dir + "/" + tool
        try? fm.removeItem(atPath: target)
        if link(source, target) != 0 { try? fm.copyItem(atPath: source, toPath: target) }
        chmod(target, 0o755)
    }
    return dir
}()
