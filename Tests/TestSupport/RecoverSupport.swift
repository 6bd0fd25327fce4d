// What walferry-recover's tests share: the tool run from where the postgres user can reach it (the
// restore_command it writes names the walferry-restore next to it), and a cluster folder whose data
// directory is empty, for walferry-recover to fill.

import Foundation

/// walferry-recover linked (or copied) next to the other tools in postgresReachableToolDirectory.
public let reachableRecoverTool: String = {
    let target = postgresReachableToolDirectory + "/walferry-recover"
    let source = walferryTool("walferry-recover")
    guard target != source else { return target }
    try? FileManager.default.removeItem(atPath: target)
    if link(source, target) != 0 { try? FileManager.default.copyItem(atPath: source, toPath: target) }
    chmod(target, 0o755)
    return target
}()

/// Runs walferry-recover (as the test process's user: root in CI).
public func runRecoverTool(_ arguments: [String], environment: [String: String]? = nil) throws -> ProcessOutcome {
    try runProcess(reachableRecoverTool, arguments, environment: environment)
}

/// Starts walferry-recover in the background.
public func startRecoverTool(_ arguments: [String]) throws -> RunningProcess {
    try RunningProcess(reachableRecoverTool, arguments)
}

/// A cluster whose folder (owned by postgres) holds an empty 0700 data directory: made from an
/// empty tarball by PostgresCluster's own restoring initialiser. Not configured, not started.
public func clusterToRecoverInto(_ installation: PostgresInstallation, name: String) throws -> PostgresCluster {
    let scratch = try TemporaryDirectory(prefix: "walferry-empty-tar")
    let tarball = scratch.join("empty.tar.bz2")
    let made = try runProcess("/bin/tar", ["-cjf", tarball, "-T", "/dev/null"])
    guard made.status == 0 else { throw TestFailure("tar -cjf of nothing failed: \(made)") }
    return try PostgresCluster(installation: installation, restoring: tarball, name: name)
}

/// A file's contents as text, or "" when it cannot be read.
public func fileText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}
