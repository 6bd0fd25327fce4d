// walferry-check's test support: the classic setup (a primary archiving through walferry-archive
// into a `.bz2` archive, a nightly-style walferry-backup, a standby streaming with the archive as
// fallback and an archive-only standby), and the real parsers its outputs are checked with: Python's
// prometheus_client text parser (Debian's python3-prometheus-client, installed by scripts/setup) and
// the Nagios plugin guidelines' output grammar.
//
// Like PostgreSQL's src/test/recovery/t/001_stream_rep.pl and 002_archiving.pl scenes, on
// PostgresCluster (PostgresCluster.swift).

import Foundation

/// A primary, its archive and backups, and two standbys: one streaming with restore_command as its
/// fallback, one that replays from the archive only.
public final class ReplicationScene: @unchecked Sendable {
    // @unchecked: used by the one test that made it.
    public let pg: PostgresInstallation
    public let folder: TemporaryDirectory
    public let archive: String
    public let backups: String
    public let primary: PostgresCluster
    public let streaming: PostgresCluster
    public let archiveOnly: PostgresCluster

    public init() throws {
        pg = try PostgresInstallation.system()
        folder = try TemporaryDirectory(prefix: "walferry-check-scene")
        archive = try folder.makeDirectory("archive")
        try handToPostgresUser(archive)
        backups = try folder.makeDirectory("backups")
        primary = try PostgresCluster(installation: pg, name: "primary", settings: [
            "archive_mode": "on",
            "archive_command": "'\(postgresReachableToolDirectory)/walferry-archive %p \(archive)/%f.bz2'",
            "max_wal_senders": "5",
        ])
        try primary.start()
        try primary.sql("CREATE TABLE t (id int)")
        let backup = try runTool("walferry-backup", ["-d", ReplicationScene.conninfo(primary), "-D", primary.dataDirectory,
                                                     "-o", backups, "-c", "fast", "-j", "2", "--wal-archive", archive])
        guard backup.status == 0 else { throw TestFailure("walferry-backup failed: \(backup)") }

        let restore = "'\(postgresReachableToolDirectory)/walferry-restore --standby \(archive)/%f %p'"
        streaming = try PostgresCluster(baseBackupOf: primary, name: "streaming")
        try streaming.appendCopySettings([
            "primary_conninfo": "'host=\(primary.socketDirectory) port=\(primary.port) user=postgres'",
            "restore_command": restore, "wal_retrieve_retry_interval": "'200ms'",
        ])
        archiveOnly = try PostgresCluster(baseBackupOf: primary, name: "archive-only")
        try archiveOnly.appendCopySettings(["primary_conninfo": "''", "restore_command": restore,
                                            "wal_retrieve_retry_interval": "'200ms'"])
        try streaming.start()
        try archiveOnly.start()
        // Some WAL after the backup, archived: segments on both sides of the backup's range.
        for _ in 0..<3 { try switchSegment() }
        let last = try switchSegment()
        try waitUntilArchived(last)
        try waitUntil("the streaming standby streams", timeout: 60) {
            try streaming.sql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == "1"
        }
    }

    deinit {
        try? archiveOnly.stop(mode: "immediate")
        try? streaming.stop(mode: "immediate")
        try? primary.stop(mode: "immediate")
    }

    public static func conninfo(_ cluster: PostgresCluster) -> String {
        "host=\(cluster.socketDirectory) port=\(cluster.port) user=postgres dbname=postgres"
    }

    /// Writes a row, switches to a new segment, and returns the name of the segment completed.
    @discardableResult
    public func switchSegment() throws -> String {
        try primary.sql("INSERT INTO t VALUES (1)")
        return try primary.sql("SELECT pg_walfile_name(pg_switch_wal())")
    }

    /// Waits until the primary has archived `name` (and so everything before it).
    public func waitUntilArchived(_ name: String) throws {
        try waitUntil("the primary has archived \(name)", timeout: 120) {
            let archived = try primary.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            return archived.count == 24 && archived >= name
        }
    }

    /// The archived segments (`.bz2` names), sorted.
    public func archivedSegments() throws -> [String] {
        try listDirectory(archive).filter { $0.count == 28 && $0.hasSuffix(".bz2") }.sorted()
    }

    /// The one backup's directory.
    public func backupDirectory() throws -> String {
        guard let name = try listDirectory(backups).first(where: { !$0.hasPrefix(".") }) else {
            throw TestFailure("no backup in \(backups)")
        }
        return backups + "/" + name
    }

    /// walferry-check's arguments for the whole scene.
    public var checkArguments: [String] {
        ["-d", ReplicationScene.conninfo(primary), "-A", archive, "-B", backups,
         "-s", ReplicationScene.conninfo(streaming), "-s", ReplicationScene.conninfo(archiveOnly)]
    }
}

// MARK: - The parsers

/// Parses Prometheus text with prometheus_client's own parser (text_string_to_metric_families) and
/// returns every sample as `name{label="value",...} value` with labels sorted and their values
/// written as JSON strings (so that an escaped newline stays one line), one a line; throws
/// with the parser's error when the text is not valid. Debian's python3 is used, with
/// python3-prometheus-client, which scripts/setup installs: a missing parser fails the test.
public func parsePrometheusText(_ text: String) throws -> [String] {
    let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        for family in text_string_to_metric_families(sys.stdin.read()):
            assert family.type == "gauge", family
            for s in family.samples:
                labels = ",".join('%s=%s' % (k, json.dumps(v)) for k, v in sorted(s.labels.items()))
                value = int(s.value) if s.value == int(s.value) else s.value
                print("%s{%s} %s" % (s.name, labels, value))
        """
    let outcome = try runProcess("/usr/bin/python3", ["-c", script], input: Array(text.utf8))
    guard outcome.status == 0 else {
        throw TestFailure("prometheus_client refused the text (is python3-prometheus-client installed? scripts/setup installs it): \(outcome.stderr)\n\(text)")
    }
    return outcome.stdoutLines
}

/// The Nagios plugin guidelines' output: the first line is `WALFERRY STATUS - text`, optionally
/// followed by ` | ` and space-separated perfdata items `'label'=value[UOM];[warn];[crit];[min];[max]`
/// (UOM one of s, us, ms, %, B, KB, MB, TB, c; a label with spaces or = quoted in single quotes, a
/// quote in it doubled; labels unique). Returns why `output` breaks that grammar, or nil.
public func nagiosGrammarProblem(_ output: String) -> String? {
    guard let line = output.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) else { return "no output" }
    let head = try! NSRegularExpression(pattern: #"^WALFERRY (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+?)(?: \| (.*))?$"#)
    guard let match = head.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else {
        return "the status line does not read \"WALFERRY STATUS - text | perfdata\": \(line)"
    }
    guard let range = Range(match.range(at: 3), in: line) else { return nil }
    let perfdata = String(line[range])
    let item = #"(?:'(?:[^'=]|'')+'|[^'= ]+)=-?[0-9]+(?:\.[0-9]+)?(?:s|us|ms|%|B|KB|MB|TB|c)?(?:;(?:-?[0-9]+(?:\.[0-9]+)?)?){0,4}"#
    let all = try! NSRegularExpression(pattern: "^\(item)(?: \(item))*$")
    if all.firstMatch(in: perfdata, range: NSRange(perfdata.startIndex..., in: perfdata)) == nil {
        return "the perfdata break the plugin guidelines' grammar: \(perfdata)"
    }
    let label = try! NSRegularExpression(pattern: item.replacingOccurrences(of: "(?:'(?:[^'=]|'')+'|[^'= ]+)=", with: "('(?:[^'=]|'')+'|[^'= ]+)="))
    let labels = label.matches(in: perfdata, range: NSRange(perfdata.startIndex..., in: perfdata)).compactMap {
        Range($0.range(at: 1), in: perfdata).map { String(perfdata[$0]) }
    }
    if Set(labels).count != labels.count { return "a perfdata label is given twice: \(labels)" }
    return nil
}
