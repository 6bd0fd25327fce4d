// Throwaway PostgreSQL clusters for end-to-end tests.
//
// Like PostgreSQL's own PostgreSQL::Test::Cluster (src/test/perl), in Swift: each cluster gets its own
// folder, data directory and Unix socket in that folder (listen_addresses = '', so no TCP port is
// shared between tests), small settings, and waiting is always polling with a deadline. Unlike it, the
// server runs as the `postgres` operating-system user through runuser when the tests run as root,
// since PostgreSQL refuses to run as root and CI runs as root.
//
// A test that needs a server never skips: when the binaries cannot be found it fails, saying how to
// get them (scripts/test fetches PostgreSQL 17 and 18).

import Foundation

/// One PostgreSQL installation's binaries.
public struct PostgresInstallation: Sendable {
    public let bindir: String
    public let majorVersion: Int

    public func tool(_ name: String) -> String { bindir + "/" + name }

    /// Debian's PostgreSQL, found through `pg_config --bindir`.
    public static func system() throws -> PostgresInstallation {
        let outcome = try runProcess("/usr/bin/env", ["pg_config", "--bindir"])
        let bindir = outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard outcome.status == 0, FileManager.default.isExecutableFile(atPath: bindir + "/initdb") else {
            throw TestFailure("PostgreSQL's server binaries were not found through pg_config --bindir (\(outcome.status)); install postgresql-15 and libpq-dev")
        }
        return try PostgresInstallation(bindir: bindir)
    }

    /// PostgreSQL `major`: Debian's when it is that version, else `WALFERRY_PG<major>_BINDIR`, else the copy
    /// that scripts/setup unpacks into `/var/tmp/walferry-postgresql-<major>` (outside the checkout, so
    /// that the postgres user can run it even when the checkout is under root's home).
    public static func version(_ major: Int) throws -> PostgresInstallation {
        if let system = try? system(), system.majorVersion == major { return system }
        var candidates: [String] = []
        if let dir = ProcessInfo.processInfo.environment["WALFERRY_PG\(major)_BINDIR"], !dir.isEmpty { candidates.append(dir) }
        let cache = ProcessInfo.processInfo.environment["WALFERRY_PG_CACHE"].flatMap { $0.isEmpty ? nil : $0 } ?? "/var/tmp"
        candidates.append(cache + "/walferry-postgresql-\(major)/bin")
        for dir in candidates where FileManager.default.isExecutableFile(atPath: dir + "/pg_ctl") {
            let installation = try PostgresInstallation(bindir: dir)
            if installation.majorVersion == major { return installation }
        }
        throw TestFailure("""
            PostgreSQL \(major) binaries were not found in \(candidates.joined(separator: " or ")); \
            run the tests with scripts/test, which downloads them, or set WALFERRY_PG\(major)_BINDIR
            """)
    }

    init(bindir: String) throws {
        self.bindir = bindir
        let outcome = try runProcess(bindir + "/pg_ctl", ["--version"])
        // "pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        guard let versionWord = outcome.stdout.split(separator: " ").dropFirst(2).first,
              let major = Int(versionWord.split(separator: ".").first ?? "") else {
            throw TestFailure("could not read the version of \(bindir)/pg_ctl: \(outcome)")
        }
        majorVersion = major
    }
}

/// The package's root folder (the one holding Package.swift), found from this source file's path.
public let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url = url.deletingLastPathComponent()
        if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
    }
    return FileManager.default.currentDirectoryPath
}()

/// Polls `condition` every 50 ms until it holds; throws once `timeout` seconds have passed.
public func waitUntil(_ what: String, timeout: Double = 60, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return }
        if Date() > deadline { throw TestFailure("timed out after \(timeout) s waiting until \(what)") }
        usleep(50_000)
    }
}

/// A cluster in a private folder, owned by the postgres user when the tests run as root.
public final class PostgresCluster: @unchecked Sendable {
    // @unchecked: a cluster is used by the one test that made it; `running` is touched only by it.
    public let installation: PostgresInstallation
    public let folder: TemporaryDirectory
    public let dataDirectory: String
    public let socketDirectory: String
    public let logFile: String
    public let port = 5432
    private var running = false

    /// Runs initdb (`-A trust -U postgres`, data checksums) and appends `settings` to postgresql.conf.
    public init(installation: PostgresInstallation, name: String = "node", initdbArguments: [String] = [],
                settings: [String: String] = [:]) throws {
        self.installation = installation
        (folder, dataDirectory, socketDirectory, logFile) = try PostgresCluster.makeFolder(name)
        let initdb = try runAsPostgresUser(installation.tool("initdb"),
                                           ["-D", dataDirectory, "-A", "trust", "-U", "postgres", "--data-checksums",
                                            "--no-sync", "--no-instructions"] + initdbArguments,
                                           workingDirectory: folder.path)
        guard initdb.status == 0 else { throw TestFailure("initdb failed: \(initdb)") }
        var conf: [String: String] = [
            "listen_addresses": "''",
            "unix_socket_directories": "'\(socketDirectory)'",
            "port": "\(port)",
            "shared_buffers": "'16MB'",
            "max_connections": "20",
            "fsync": "off",
            "wal_level": "replica",
            "log_line_prefix": "'%m [%p] '",
            "lc_messages": "'C'",
        ]
        conf.merge(settings) { _, new in new }
        try appendSettings(conf)
    }

    /// A copy of `primary` made with pg_basebackup (WAL streamed into the backup), with `settings` appended
    /// and, unless `signal` is nil, `standby.signal` or `recovery.signal` created. Not started.
    public init(baseBackupOf primary: PostgresCluster, name: String = "standby", signal: String? = "standby.signal",
                settings: [String: String] = [:]) throws {
        installation = primary.installation
        (folder, dataDirectory, socketDirectory, logFile) = try PostgresCluster.makeFolder(name)
        let backup = try runAsPostgresUser(installation.tool("pg_basebackup"),
                                           ["-D", dataDirectory, "-h", primary.socketDirectory, "-p", "\(primary.port)",
                                            "-U", "postgres", "-c", "fast", "-X", "stream", "--no-sync"],
                                           workingDirectory: folder.path)
        guard backup.status == 0 else { throw TestFailure("pg_basebackup failed: \(backup)") }
        try appendCopySettings(settings)
        if let signal {
            try writeFile(dataDirectory + "/" + signal, [])
            try handToPostgresUser(dataDirectory + "/" + signal, recursive: false)
        }
    }

    /// A data directory extracted from `tarball` (a backup's base.tar.bz2, by tar -xjf) into a fresh
    /// 0700 folder owned by the postgres user. Neither configured nor started: pg_verifybackup compares
    /// postgresql.conf with the backup's manifest, so appendCopySettings comes after any verification.
    public init(installation: PostgresInstallation, restoring tarball: String, name: String = "restored") throws {
        self.installation = installation
        (folder, dataDirectory, socketDirectory, logFile) = try PostgresCluster.makeFolder(name)
        try folder.makeDirectory("data", mode: 0o700)
        let extract = try runProcess("/bin/tar", ["-xjf", tarball, "-C", dataDirectory])
        guard extract.status == 0 else { throw TestFailure("tar -xjf \(tarball) failed: \(extract)") }
        try handToPostgresUser(folder.path)
    }

    /// Appends what makes a copy of another cluster a server of its own (its own socket folder, no
    /// archiving into the original's archive), then `settings`.
    public func appendCopySettings(_ settings: [String: String] = [:]) throws {
        var conf = ["archive_mode": "off", "archive_command": "''", "unix_socket_directories": "'\(socketDirectory)'"]
        conf.merge(settings) { _, new in new }
        try appendSettings(conf)
    }

    /// The cluster's private folder, with its socket folder, handed to the postgres user.
    private static func makeFolder(_ name: String) throws -> (TemporaryDirectory, String, String, String) {
        let folder = try TemporaryDirectory(prefix: "walferry-\(name)")
        try folder.makeDirectory("socket", mode: 0o700)
        try handToPostgresUser(folder.path)
        return (folder, folder.join("data"), folder.join("socket"), folder.join("server.log"))
    }

    deinit {
        if running { _ = try? stop(mode: "immediate") }
    }

    /// Appends `name = value` lines to postgresql.conf; values are written as given (quote strings).
    public func appendSettings(_ settings: [String: String]) throws {
        let lines = settings.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)\n" }.joined()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(lines.utf8))
        try handle.close()
    }

    /// Starts the server and waits, with a deadline, until it accepts connections.
    public func start() throws {
        let outcome = try runAsPostgresUser(installation.tool("pg_ctl"),
                                            ["-D", dataDirectory, "-l", logFile, "-w", "-t", "120", "start"],
                                            workingDirectory: folder.path)
        guard outcome.status == 0 else { throw TestFailure("pg_ctl start failed: \(outcome)\nserver log:\n\(serverLog())") }
        running = true
        try waitUntil("the server accepts connections", timeout: 60) {
            try runProcess(installation.tool("pg_isready"), ["-h", socketDirectory, "-p", "\(port)", "-U", "postgres"]).status == 0
        }
    }

    /// Stops the server (`fast` by default) and waits for it to be gone.
    public func stop(mode: String = "fast") throws {
        let outcome = try runAsPostgresUser(installation.tool("pg_ctl"),
                                            ["-D", dataDirectory, "-m", mode, "-w", "-t", "120", "stop"],
                                            workingDirectory: folder.path)
        running = false
        guard outcome.status == 0 else { throw TestFailure("pg_ctl stop failed: \(outcome)") }
    }

    /// Promotes a standby and waits for the end of recovery (pg_ctl promote -w).
    public func promote() throws {
        let outcome = try runAsPostgresUser(installation.tool("pg_ctl"), ["-D", dataDirectory, "-w", "-t", "120", "promote"],
                                            workingDirectory: folder.path)
        guard outcome.status == 0 else { throw TestFailure("pg_ctl promote failed: \(outcome)\nserver log:\n\(serverLog())") }
    }

    /// Runs SQL through psql (unaligned, tuples only, stop on the first error) and returns its output
    /// without the final newline.
    @discardableResult
    public func sql(_ statement: String, database: String = "postgres") throws -> String {
        let outcome = try runProcess(installation.tool("psql"),
                                     ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", socketDirectory,
                                      "-p", "\(port)", "-U", "postgres", "-d", database, "-c", statement])
        guard outcome.status == 0 else { throw TestFailure("psql failed on \(statement): \(outcome)") }
        return outcome.stdout.hasSuffix("\n") ? String(outcome.stdout.dropLast()) : outcome.stdout
    }

    /// The server log so far (for failure messages and log assertions).
    public func serverLog() -> String {
        (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "(no server log)"
    }
}
