// The recovery settings walferry-recover writes: the signal file and one marked block at the end of
// postgresql.auto.conf (recovery.conf before PostgreSQL 12).
//
// Like pg_basebackup -R (GenerateRecoveryConfig: standby.signal and primary_conninfo appended to
// postgresql.auto.conf) and pgBackRest's restore (restore_command, the recovery_target_* options and
// recovery_target_action, with --type=standby|time|lsn|xid|name|immediate), except that:
// - the settings sit between two marker lines, and a later walferry-recover (of a backup taken from a
//   server that an earlier one made) removes the old block whole before adding its own, so no stale
//   recovery_target_time survives from one recovery to the next;
// - every recovery target the recovery does not use is set to '' in the block, before the one it
//   uses, since the configuration may still hold one from outside the block (ALTER SYSTEM drops
//   comments, and so the markers), and two targets stop the server ("multiple recovery targets
//   specified", raised by the assign hooks in the order the settings are applied);
// - a point-in-time copy gets archive_mode = off unless asked otherwise, so that it never archives
//   into the primary's archive on its new timeline.
// The quoting is the configuration file's (guc-file.l): single quotes doubled, backslashes doubled.

/// A recovery target (recovery_target_*).
public enum RecoveryTarget: Sendable, Equatable {
    case time(String)
    case lsn(UInt64)
    case xid(String)
    case name(String)
    case immediate
}

/// The settings for one recovery.
public struct RecoverySettings: Sendable {
    public var mode: RecoveryMode
    public var target: RecoveryTarget?
    /// promote, pause or shutdown.
    public var targetAction: String?
    /// "latest", "current" or a number; nil leaves the server's default.
    public var targetTimeline: String?
    /// restore_command; nil without an archive.
    public var restoreCommand: String?
    /// archive_cleanup_command: walferry-cleanup --reader, for a standby registered as a reader.
    public var archiveCleanupCommand: String?
    public var primaryConninfo: String?
    /// archive_mode = off (point-in-time copies, unless --keep-archiving).
    public var archiveModeOff: Bool
    /// The backup's name and the time, for the block's first line.
    public var backupID: String
    public var timestamp: String

    public static let beginMarker = "# walferry-recover: begin"
    public static let endMarker = "# walferry-recover: end"

    /// `value` as a configuration-file string literal.
    static func quoted(_ value: String) -> String {
        "'" + value.replacingAll("\\", with: "\\\\").replacingAll("'", with: "''") + "'"
    }

    /// The recovery_target_* lines: the target set, every other one reset.
    var targetLines: [String] {
        var values: [(String, String)] = [("recovery_target", ""), ("recovery_target_time", ""), ("recovery_target_lsn", ""),
                                          ("recovery_target_xid", ""), ("recovery_target_name", "")]
        func set(_ key: String, _ value: String) {
            if let index = values.firstIndex(where: { $0.0 == key }) { values[index].1 = value }
        }
        switch target {
        case .time(let text): set("recovery_target_time", text)
        case .lsn(let lsn): set("recovery_target_lsn", formatLSN(lsn))
        case .xid(let xid): set("recovery_target_xid", xid)
        case .name(let name): set("recovery_target_name", name)
        case .immediate: set("recovery_target", "immediate")
        case nil: break
        }
        // The resets first, the target last: the server's assign hooks refuse a second target as soon
        // as any recovery_target_* is assigned, '' included, after one that is set.
        let ordered = values.filter { $0.1.isEmpty } + values.filter { !$0.1.isEmpty }
        return ordered.map { "\($0.0) = \(Self.quoted($0.1))" }
    }

    /// The block's lines (markers included), for PostgreSQL 12 and later.
    public func block() -> [String] {
        var lines = [Self.beginMarker + " (backup \(backupID), \(timestamp))",
                     "# A later walferry-recover replaces this block whole."]
        if let restoreCommand { lines.append("restore_command = \(Self.quoted(restoreCommand))") }
        if let archiveCleanupCommand { lines.append("archive_cleanup_command = \(Self.quoted(archiveCleanupCommand))") }
        if let primaryConninfo { lines.append("primary_conninfo = \(Self.quoted(primaryConninfo))") }
        lines += targetLines
        if let targetAction { lines.append("recovery_target_action = \(Self.quoted(targetAction))") }
        if let targetTimeline { lines.append("recovery_target_timeline = \(Self.quoted(targetTimeline))") }
        if archiveModeOff { lines.append("archive_mode = off") }
        lines.append(Self.endMarker)
        return lines
    }

    /// postgresql.auto.conf's new contents: the old ones without any earlier block, then this block.
    public func updatedAutoConf(_ old: [UInt8], includeRecovery: Bool) -> [UInt8] {
        var kept: [Substring] = []
        var inside = false
        let text = String(decoding: old, as: UTF8.self)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(Self.beginMarker) { inside = true; continue }
            if inside {
                if line.hasPrefix(Self.endMarker) { inside = false }
                continue
            }
            kept.append(line)
        }
        while let last = kept.last, last.isEmpty { kept.removeLast() }
        var lines = kept.map(String.init)
        if includeRecovery {
            lines += block()
        } else if archiveModeOff {
            lines += [Self.beginMarker + " (backup \(backupID), \(timestamp))", "archive_mode = off", Self.endMarker]
        }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    /// recovery.conf for PostgreSQL 11 and older: the same settings, standby_mode for a standby.
    public func recoveryConf() -> [UInt8] {
        var lines = [Self.beginMarker + " (backup \(backupID), \(timestamp))"]
        if mode == .standby { lines.append("standby_mode = 'on'") }
        if let restoreCommand { lines.append("restore_command = \(Self.quoted(restoreCommand))") }
        if let archiveCleanupCommand { lines.append("archive_cleanup_command = \(Self.quoted(archiveCleanupCommand))") }
        if let primaryConninfo { lines.append("primary_conninfo = \(Self.quoted(primaryConninfo))") }
        switch target {
        case .time(let text): lines.append("recovery_target_time = \(Self.quoted(text))")
        case .lsn(let lsn): lines.append("recovery_target_lsn = \(Self.quoted(formatLSN(lsn)))")
        case .xid(let xid): lines.append("recovery_target_xid = \(Self.quoted(xid))")
        case .name(let name): lines.append("recovery_target_name = \(Self.quoted(name))")
        case .immediate: lines.append("recovery_target = 'immediate'")
        case nil: break
        }
        if let targetAction { lines.append("recovery_target_action = \(Self.quoted(targetAction))") }
        if let targetTimeline { lines.append("recovery_target_timeline = \(Self.quoted(targetTimeline))") }
        lines.append(Self.endMarker)
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }
}

extension String {
    /// Every `target` replaced by `replacement` (no Foundation here).
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.walferryRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    /// The first occurrence of `target`, without Foundation.
    fileprivate func walferryRange(of target: String) -> Range<Index>? {
        guard !target.isEmpty else { return nil }
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(target) { return index..<self.index(index, offsetBy: target.count) }
            index = self.index(after: index)
        }
        return nil
    }
}

/// A --target-time as seconds since the epoch, for choosing the backup: "YYYY-MM-DD HH:MM:SS", an
/// optional fraction, then a zone: "+HH", "+HH:MM", "-HHMM", "Z", " UTC" or " GMT". Nil for anything
/// else, a time without a zone included (the server would read it in its own time zone, which
/// walferry-recover cannot know).
public func parseTargetTime(_ text: String) -> Int64? {
    var rest = Substring(text)
    func number(_ count: Int) -> Int64? {
        guard rest.count >= count, let value = Int64(rest.prefix(count)), rest.prefix(count).allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        rest = rest.dropFirst(count)
        return value
    }
    func skip(_ character: Character) -> Bool {
        guard rest.first == character else { return false }
        rest = rest.dropFirst()
        return true
    }
    guard let year = number(4), skip("-"), let month = number(2), skip("-"), let day = number(2),
          skip(" ") || skip("T"), let hour = number(2), skip(":"), let minute = number(2), skip(":"), let second = number(2),
          (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
    if skip(".") { rest = rest.drop { $0.isASCII && $0.isNumber } }
    var offset: Int64 = 0
    let zone = rest.drop { $0 == " " }
    if zone == "Z" || zone == "UTC" || zone == "GMT" || zone == "+00" || zone == "-00" {
        offset = 0
    } else {
        rest = zone
        let sign: Int64
        if skip("+") { sign = 1 } else if skip("-") { sign = -1 } else { return nil }
        guard let hours = number(2) else { return nil }
        _ = skip(":")
        let minutes = rest.isEmpty ? 0 : (number(2) ?? -1)
        guard minutes >= 0, rest.isEmpty else { return nil }
        offset = sign * (hours * 3600 + minutes * 60)
    }
    return daysFromCivil(year: year, month: month, day: day) * 86400 + hour * 3600 + minute * 60 + second - offset
}
