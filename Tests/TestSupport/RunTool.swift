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
///
/// Started with posix_spawn and reaped with waitpid rather than through Foundation's Process, whose
/// exit detection waits for descriptors that a daemon started by the child (pg_ctl start) inherits
/// and keeps open for ever. For the same reason output goes to unlinked temporary files, not pipes.
public func runProcess(_ executable: String, _ arguments: [String], workingDirectory: String? = nil,
                       environment: [String: String]? = nil, input: [UInt8]? = nil) throws -> ProcessOutcome {
    try RunningProcess(executable, arguments, workingDirectory: workingDirectory, environment: environment, input: input).wait()
}

/// A process started and not yet waited for: a test can signal it, then wait, with or without a
/// deadline. One that is never waited for (a test that failed first) is killed and reaped.
public final class RunningProcess {
    public let pid: pid_t
    private let out: CaptureFile, err: CaptureFile, stdin: CaptureFile
    /// The wait status, once reaped.
    private var waitStatus: Int32?

    public init(_ executable: String, _ arguments: [String], workingDirectory: String? = nil,
                environment: [String: String]? = nil, input: [UInt8]? = nil) throws {
        out = try CaptureFile()
        err = try CaptureFile()
        stdin = try CaptureFile()
        if let input { try stdin.write(input) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if input == nil {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        } else {
            posix_spawn_file_actions_adddup2(&actions, stdin.fd, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, out.fd, 1)
        posix_spawn_file_actions_adddup2(&actions, err.fd, 2)

        // posix_spawn_file_actions_addchdir_np is a GNU extension Swift does not see; env -C changes directory.
        let command = workingDirectory.map { ["/usr/bin/env", "-C", $0, executable] } ?? [executable]
        let environmentList = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        // The test runner's threads block some signals, and a child inherits the mask (and ignored
        // signals): a pgbench -T would then never see its alarm. Start every child with nothing blocked
        // and the default action for every signal, as a shell would.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let spawned = withCStrings(command + arguments) { argv in
            withCStrings(environmentList) { envp in posix_spawn(&child, command[0], &actions, &attributes, argv, envp) }
        }
        guard spawned == 0 else {
            throw TestFailure("could not run \(executable): \(String(cString: strerror(spawned)))")
        }
        pid = child
    }

    /// Sends `signal` to the process.
    public func signal(_ signal: Int32) { kill(pid, signal) }

    deinit {
        if waitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// Waits for the process to end and returns what it did.
    public func wait() throws -> ProcessOutcome {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw TestFailure("waitpid failed: \(String(cString: strerror(errno)))") }
        }
        waitStatus = status
        return try outcome(status)
    }

    /// Waits at most `timeout` seconds for the process to end (a test failure after that) and returns
    /// what it did.
    public func wait(timeout: Double) throws -> ProcessOutcome {
        try waitUntil("process \(pid) exits", timeout: timeout) {
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return false }
            waitStatus = status
            return true
        }
        return try outcome(waitStatus ?? 0)
    }

    /// What the process did if it has ended, without waiting; nil while it runs.
    public func poll() throws -> ProcessOutcome? {
        if let waitStatus { return try outcome(waitStatus) }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        waitStatus = status
        return try outcome(status)
    }

    private func outcome(_ status: Int32) throws -> ProcessOutcome {
        let signal = status & 0x7F  // WIFSIGNALED / WTERMSIG / WEXITSTATUS, which Swift does not import
        let outBytes = try out.contents(), errBytes = try err.contents()
        return ProcessOutcome(status: signal == 0 ? (status >> 8) & 0xFF : signal,
                              signaled: signal != 0 && signal != 0x7F,
                              stdout: String(decoding: outBytes, as: UTF8.self),
                              stderr: String(decoding: errBytes, as: UTF8.self),
                              stdoutBytes: outBytes)
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}

/// An anonymous temporary file (created close-on-exec, then unlinked at once) that a child process
/// reads from or writes into.
final class CaptureFile {
    let fd: Int32

    init() throws {
        var template = Array("/tmp/walferry-capture.XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else { throw TestFailure("could not create a capture file: \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // only the dup2'd copies reach the child
        template.withUnsafeBufferPointer { buffer in _ = buffer.baseAddress.map { unlink($0) } }
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) throws {
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw TestFailure("could not write a capture file") }
        lseek(fd, 0, SEEK_SET)
    }

    /// Everything written so far.
    func contents() throws -> [UInt8] {
        let size = Int(lseek(fd, 0, SEEK_END))
        var bytes = [UInt8](repeating: 0, count: max(size, 0))
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
        guard read == size else { throw TestFailure("could not read a capture file") }
        return bytes
    }
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
