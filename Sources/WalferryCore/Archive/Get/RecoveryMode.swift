// Which kind of recovery called walferry-restore: a standby, or a targeted (point-in-time) recovery.
// The difference decides the exit status of every failure (docs/server-rules.md §4): a standby
// reads any status from 1 to 125 as "not available yet" and retries, while a targeted recovery reads
// it as the end of the archive, ends recovery there and promotes. So a failure must be 1 on a
// standby (it retries, and can stream meanwhile) and fatal (>= 126) in targeted recovery.
//
// Like pgBackRest's archive-get, which also looks at the data directory, but explicit first:
// - `--standby` or `--pitr` in restore_command decides, and is the documented way;
// - otherwise the signal files in the working directory (the data directory when the server calls):
//   `standby.signal` means standby, also when `recovery.signal` exists too (the server enters standby
//   mode then); `recovery.signal` alone means targeted recovery; PostgreSQL 11 and older have
//   `recovery.conf`, whose `standby_mode` decides;
// - neither: targeted recovery, the safe side. This is the case in which a guess can be wrong: the
//   server deletes the signal files before its last history-file probes at the end of recovery (and
//   at a standby's promotion), and pg_rewind runs restore_command from its own working directory. A
//   fatal status there stops a server or pg_rewind that would otherwise go on with a wrong answer
//   (a promotion that picks a timeline ID the broken archive already holds); a clean "not found" is
//   1 in every mode, so the normal probes are unaffected.

import Glibc

/// The kind of recovery that calls restore_command.
public enum RecoveryMode: Sendable, Equatable {
    /// standby.signal: failures are exit status 1, which the server retries.
    case standby
    /// recovery.signal: failures are fatal, so that recovery never ends early.
    case targeted
}

/// The mode, and why: for the message that explains an exit status.
public struct RecoveryModeDecision: Sendable, Equatable {
    public let mode: RecoveryMode
    /// "--standby", "standby.signal", "recovery.conf", "no signal file", ...
    public let reason: String

    public init(mode: RecoveryMode, reason: String) {
        self.mode = mode
        self.reason = reason
    }

    /// Decides the mode: `explicit` when given (with `flag` as the reason), else from the signal files
    /// in the working directory (see the file header).
    public static func decide(explicit: RecoveryMode?, flag: String? = nil) -> RecoveryModeDecision {
        if let explicit {
            return RecoveryModeDecision(mode: explicit, reason: flag ?? (explicit == .standby ? "--standby" : "--pitr"))
        }
        if exists("standby.signal") { return RecoveryModeDecision(mode: .standby, reason: "standby.signal") }
        if exists("recovery.signal") { return RecoveryModeDecision(mode: .targeted, reason: "recovery.signal") }
        if let standbyMode = recoveryConfStandbyMode() {
            return RecoveryModeDecision(mode: standbyMode ? .standby : .targeted,
                                        reason: standbyMode ? "recovery.conf with standby_mode on" : "recovery.conf")
        }
        return RecoveryModeDecision(mode: .targeted, reason: "no standby.signal or recovery.signal in the working directory")
    }

    private static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// PostgreSQL 11 and older: nil when there is no recovery.conf; else whether it sets standby_mode
    /// on (the last setting wins, as in the server's parser; on, true, yes and 1, in any case).
    static func recoveryConfStandbyMode() -> Bool? {
        let fd = open("recovery.conf", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64 * 1024)
        let count = bytes.withUnsafeMutableBytes { (try? readFully(fd, into: $0)) ?? 0 }
        return parseStandbyMode(String(decoding: bytes[..<count], as: UTF8.self))
    }

    /// The value of the last `standby_mode` line of a recovery.conf text (false when there is none).
    static func parseStandbyMode(_ text: String) -> Bool {
        var result = false
        for rawLine in text.split(separator: "\n") {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, trimmed(parts[0]).lowercased() == "standby_mode" else { continue }
            var value = trimmed(parts[1])
            if value.hasPrefix("'") && value.hasSuffix("'") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            result = ["on", "true", "yes", "1"].contains(value.lowercased())
        }
        return result
    }

    private static func trimmed(_ text: Substring) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
