// A network file system for one test: a folder exported by an sshd of the test's own on 127.0.0.1
// (its own host key, config and authorized key, SFTP served in its session processes) and mounted
// with sshfs, which reconnects by itself. The test can stop the server and start it again; deinit
// unmounts and ends every process it started, on every way out of the test.
//
// Like FaultFileSystem, except that the faults are a real network share's: a server that goes away
// (connection lost, then refused) and comes back. Needs openssh-server and sshfs (scripts/setup) and
// root (sshd's privilege separation, FUSE mounts), as CI runs the tests; elsewhere the test fails.

import Foundation

public final class LoopbackSSHFS: @unchecked Sendable {
    // @unchecked: used by the one test that made it.
    private let folder: TemporaryDirectory
    /// The folder the server exports (what the share holds, seen past it).
    public let exported: String
    /// The mount point.
    public let path: String
    public let port: Int
    private let config: String
    private var server: RunningProcess?
    private var client: RunningProcess?

    public init() throws {
        guard runningAsRoot else {
            throw TestFailure("this test starts sshd and mounts sshfs and must run as root, as CI runs the tests (sudo swift test ...)")
        }
        folder = try TemporaryDirectory(prefix: "walferry-sshfs")
        exported = try folder.makeDirectory("exported")
        path = try folder.makeDirectory("mount")
        port = try freeLocalPort()
        for key in ["host_key", "client_key"] {
            let made = try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", folder.join(key)])
            guard made.status == 0 else { throw TestFailure("ssh-keygen failed: \(made)") }
        }
        try FileManager.default.copyItem(atPath: folder.join("client_key.pub"), toPath: folder.join("authorized_keys"))
        config = folder.join("sshd_config")
        try writeFile(config, Array("""
            ListenAddress 127.0.0.1
            HostKey \(folder.join("host_key"))
            AuthorizedKeysFile \(folder.join("authorized_keys"))
            PidFile none
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            Subsystem sftp internal-sftp
            LogLevel ERROR

            """.utf8))
        // sshd's privilege separation directory, which a system without a running sshd may lack.
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        try startServer()
        client = try RunningProcess("/usr/bin/sshfs", [
            "-f", "root@127.0.0.1:" + exported, path, "-o",
            "port=\(port),IdentityFile=\(folder.join("client_key")),StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,"
                + "BatchMode=yes,LogLevel=ERROR,reconnect,ServerAliveInterval=1,ServerAliveCountMax=2,"
                + "dir_cache=no,entry_timeout=0,attr_timeout=0,negative_timeout=0",
        ])
        do {
            try waitUntil("sshfs is mounted on \(path)", timeout: 15) {
                if let ended = try client?.poll() { throw TestFailure("sshfs ended before it was mounted: \(ended)") }
                return try isMountPoint(path, type: "fuse.sshfs")
            }
        } catch {
            tearDown()
            throw error
        }
    }

    deinit { tearDown() }

    private func tearDown() {
        if (try? runProcess("/usr/bin/fusermount3", ["-u", path]))?.status != 0 {
            _ = try? runProcess("/usr/bin/fusermount3", ["-u", "-z", path])
        }
        if let client, (try? client.wait(timeout: 5)) == nil { client.signal(SIGKILL); _ = try? client.wait() }
        client = nil
        stopServer()
    }

    /// `path/name`, through the share.
    public func join(_ name: String) -> String { path + "/" + name }

    /// Starts sshd and waits (10 s at most) until it accepts connections.
    public func startServer() throws {
        guard server == nil else { return }
        let started = try RunningProcess("/usr/sbin/sshd", ["-D", "-e", "-p", "\(port)", "-f", config])
        server = started
        try waitUntil("sshd accepts connections on 127.0.0.1:\(port)", timeout: 10) {
            if let ended = try started.poll() { server = nil; throw TestFailure("sshd ended: \(ended)") }
            return acceptsConnections(port: port)
        }
    }

    /// Stops the server as a crash would: its session processes (which serve SFTP) are killed, so
    /// sshfs loses its connection, and the listener ends, so reconnecting is refused.
    public func stopServer() {
        guard let server else { return }
        for pid in descendants(of: server.pid) { kill(pid, SIGKILL) }
        server.signal(SIGTERM)
        if (try? server.wait(timeout: 5)) == nil { server.signal(SIGKILL); _ = try? server.wait() }
        self.server = nil
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
func freeLocalPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("could not find a free port: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func acceptsConnections(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// The processes below `pid` (children, their children...), from /proc.
func descendants(of pid: pid_t) -> [pid_t] {
    var parents: [pid_t: pid_t] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let child = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        // "PID (COMM) STATE PPID ...": the fields after the last ")".
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, let parent = pid_t(fields[1]) { parents[child] = parent }
    }
    var found: [pid_t] = []
    var frontier = [pid]
    while let next = frontier.popLast() {
        let children = parents.filter { $0.value == next }.map(\.key)
        found += children
        frontier += children
    }
    return found
}
