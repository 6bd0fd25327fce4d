// walferry-check: is the chain whole? The primary's archiving, the archive's continuity, the backups
// and the standbys, in one run, for people, Nagios and Prometheus. Parses the arguments, talks to the
// servers through WalferryPostgres, and calls WalferryCore's checks (Sources/WalferryCore/Check/);
// every judgment and every output format is made there.
//
// Like `pgbackrest check` plus check_pgbackrest, Barman's `check --nagios` and WAL-G's `wal-verify`,
// in one tool. It writes nothing to the archive or the backups; on the servers it writes nothing but
// WAL (the smoke test's logical message, and --switch's restore point and WAL switch).

import ArgumentParser
import WalferryCLI
import WalferryCore
import WalferryPostgres

import Glibc

@main
struct CheckCommand: WalferryCommand {
    static let programName = "walferry-check"
    static let usageStatus = CheckExitStatus.unknown

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case human, nagios, json, prometheus
    }

    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: "Check the primary's archiving, the WAL archive, the backups and the standbys.",
        usage: "walferry-check [-d CONNINFO] [-A ARCHIVE] [-B BACKUPS] [-s CONNINFO]... [OPTION]...",
        discussion: """
            Each check reports ok, warning, critical or unknown, or is skipped when its inputs were \
            not given: -d for the primary's checks, -A for the archive's, -B for the backups', -s \
            (repeatable) for each standby's. walferry-check writes nothing to the archive or the \
            backups, and nothing but WAL on the servers: the smoke test's logical message and, with \
            --switch, a restore point and a WAL switch.

            For Nagios:
              walferry-check -d 'host=db1' -A /mnt/archive -B /mnt/backups --format nagios
            For node_exporter's textfile collector, from the database host's crontab:
              T=/var/lib/prometheus/node-exporter/walferry.prom
              */5 * * * * walferry-check -d postgres -A /mnt/archive --textfile $T >/dev/null

            Exit status: 0 every check ok, 1 warning, 2 critical (a server, standby, archive or \
            backup directory that cannot be reached or read is critical), 3 unknown (usage error, \
            no input given, or a check that could not judge).
            """,
        helpNames: [.customShort("?"), .short, .long]
    )

    @Option(name: [.customShort("d"), .customLong("dbname")],
            help: ArgumentHelp("The primary: connection string, URI or database name; PGHOST, PGPORT, PGUSER... apply.",
                               valueName: "CONNINFO"))
    var conninfo: String?

    @Option(name: [.customShort("A"), .customLong("archive")],
            help: ArgumentHelp("The WAL archive directory (%f and %f.bz2 files).", valueName: "DIR"))
    var archive: String?

    @Option(name: [.customShort("B"), .customLong("backups")],
            help: ArgumentHelp("The directory walferry-backup -o writes its backups to.", valueName: "DIR"))
    var backups: String?

    @Option(name: [.customShort("s"), .customLong("standby")],
            help: ArgumentHelp("A standby's connection string (repeatable).", valueName: "CONNINFO"))
    var standbys: [String] = []

    @Flag(name: .customLong("switch"),
          help: "End-to-end: create a restore point, switch WAL, and wait until the segment is archived and sound.")
    var switchWAL = false

    @Flag(name: .customLong("deep"),
          help: "Read and check every archived file in the range (headers, records, bzip2 CRCs, history syntax).")
    var deep = false

    @Option(name: .customLong("format"), help: ArgumentHelp("Output: human (default), nagios, json or prometheus.",
                                                          valueName: "FORMAT"))
    var format = Format.human

    @Option(name: .customLong("textfile"),
            help: ArgumentHelp("Also write the Prometheus text to PATH, atomically (node_exporter's textfile collector).",
                               valueName: "PATH"))
    var textfile: String?

    @Option(name: .customLong("from"),
            help: ArgumentHelp("Check continuity from this segment (default: the oldest backup's start, else the oldest segment).",
                               valueName: "NAME"))
    var from: String?

    @Option(name: .customLong("only"), help: ArgumentHelp("Run only this check or group (repeatable): archive, archive.deep...",
                                                        valueName: "NAME"))
    var only: [String] = []

    @Option(name: .customLong("skip"), help: ArgumentHelp("Skip this check or group (repeatable).", valueName: "NAME"))
    var skip: [String] = []

    @Option(name: .customLong("ready-age-warning"), help: ArgumentHelp("Age of the oldest .ready file.", valueName: "AGE"))
    var readyAgeWarning = "10min"
    @Option(name: .customLong("ready-age-critical"), help: ArgumentHelp("Age of the oldest .ready file.", valueName: "AGE"))
    var readyAgeCritical = "1h"
    @Option(name: .customLong("lag-warning"), help: ArgumentHelp("A standby's replay lag in bytes.", valueName: "SIZE"))
    var lagWarning = "64MB"
    @Option(name: .customLong("lag-critical"), help: ArgumentHelp("A standby's replay lag in bytes.", valueName: "SIZE"))
    var lagCritical = "1GB"
    @Option(name: .customLong("lag-seconds-warning"), help: ArgumentHelp("A standby's replay lag in time (default off).", valueName: "AGE"))
    var lagSecondsWarning: String?
    @Option(name: .customLong("lag-seconds-critical"), help: ArgumentHelp("A standby's replay lag in time (default off).", valueName: "AGE"))
    var lagSecondsCritical: String?
    @Option(name: .customLong("backup-age-warning"), help: ArgumentHelp("Age of the newest complete backup.", valueName: "AGE"))
    var backupAgeWarning = "26h"
    @Option(name: .customLong("backup-age-critical"), help: ArgumentHelp("Age of the newest complete backup.", valueName: "AGE"))
    var backupAgeCritical = "50h"

    @Option(name: .customLong("reader-expiry"), help: ArgumentHelp(
        "walferry-cleanup's --reader-expiry: a reader silent for half of it warns, past it is critical (default 7d).", valueName: "AGE"))
    var readerExpiry: String?

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp("Seconds to wait for each server to answer.", valueName: "SECONDS"))
    var connectTimeout = 10
    @Option(name: .customLong("wait"), help: ArgumentHelp("How long the smoke test waits for the standbys.", valueName: "AGE"))
    var smokeWait = "30s"
    @Option(name: .customLong("switch-timeout"), help: ArgumentHelp("How long --switch waits for the segment to be archived.",
                                                                   valueName: "AGE"))
    var switchTimeout = "60s"

    @Option(name: [.customShort("j"), .customLong("jobs")], help: ArgumentHelp("--deep threads (default: the number of CPUs).", valueName: "N"))
    var jobs: Int?

    @Flag(name: [.customShort("V"), .long], help: "Print the version and exit.")
    var version = false

    @Argument(help: .hidden)
    var surplus: [String] = []

    func validate() throws {
        if version { return }
        guard surplus.isEmpty else { throw ValidationError("too many command-line arguments (first is \"\(surplus[0])\")") }
        guard conninfo != nil || archive != nil || backups != nil || !standbys.isEmpty else {
            throw ValidationError("nothing to check: give -d, -A, -B or -s")
        }
        for (option, value) in [("--ready-age-warning", readyAgeWarning), ("--ready-age-critical", readyAgeCritical),
                                ("--backup-age-warning", backupAgeWarning), ("--backup-age-critical", backupAgeCritical),
                                ("--wait", smokeWait), ("--switch-timeout", switchTimeout),
                                ("--lag-seconds-warning", lagSecondsWarning ?? "0"), ("--lag-seconds-critical", lagSecondsCritical ?? "0")] {
            guard parseDuration(value) != nil else { throw ValidationError("invalid duration for \(option): \"\(value)\" (use 90, 90s, 10min, 2h or 1d)") }
        }
        for (option, value) in [("--lag-warning", lagWarning), ("--lag-critical", lagCritical)] {
            guard parseSize(value) != nil else { throw ValidationError("invalid size for \(option): \"\(value)\" (use 1048576, 512kB, 64MB or 1GB)") }
        }
        if let from {
            guard let name = WALFileName(from), name.kind == .segment, name.compression == nil else {
                throw ValidationError("invalid --from \"\(from)\": expected a WAL segment name such as 000000010000000000000003")
            }
        }
        if let readerExpiry, parseReaderExpiry(readerExpiry) == nil {
            throw ValidationError("invalid reader expiry \"\(readerExpiry)\": give hours (36h) or days (7d), as walferry-cleanup takes it")
        }
        if switchWAL && conninfo == nil { throw ValidationError("--switch needs the primary (-d)") }
        if switchWAL && archive == nil { throw ValidationError("--switch needs the archive (-A)") }
        if let problem = jobsProblem(jobs) { throw ValidationError(problem) }
        guard (1...3600).contains(connectTimeout) else { throw ValidationError("--connect-timeout must be between 1 and 3600") }
    }

    static func main() {
        parseAndRun(console: Console(program: programName))
    }

    var thresholds: CheckThresholds {
        var thresholds = CheckThresholds()
        thresholds.readyAge = Threshold(warning: parseDuration(readyAgeWarning), critical: parseDuration(readyAgeCritical))
        thresholds.lagBytes = Threshold(warning: parseSize(lagWarning), critical: parseSize(lagCritical))
        thresholds.lagSeconds = Threshold(warning: lagSecondsWarning.flatMap(parseDuration), critical: lagSecondsCritical.flatMap(parseDuration))
        thresholds.backupAge = Threshold(warning: parseDuration(backupAgeWarning), critical: parseDuration(backupAgeCritical))
        return thresholds
    }

    /// True when `check` (`group.name`) is chosen by --only and not excluded by --skip.
    func isSelected(_ check: String) -> Bool {
        func matches(_ pattern: String) -> Bool { check == pattern || check.hasPrefix(pattern + ".") }
        if skip.contains(where: matches) { return false }
        return only.isEmpty || only.contains(where: matches)
    }

    func execute(console: Console) -> CheckExitStatus {
        let checks = runChecks()
        let report = CheckReport(checks: checks.map { check in
            guard check.status != .skipped, !isSelected(check.name) else { return check }
            return CheckResult(check.name, .skipped, "not chosen (--only, --skip)", labels: check.labels)
        }, finishedAt: wallClockSeconds())
        let output = StandardOutput()
        switch format {
        case .human: output.write(formatHuman(report, colour: isatty(1) == 1 && getenv("NO_COLOR") == nil))
        case .nagios: output.write(formatNagios(report))
        case .json: output.write(formatJSON(report))
        case .prometheus: output.write(formatPrometheus(report))
        }
        output.flush()
        var status = report.exitStatus
        if let textfile, let problem = writeTextfile(formatPrometheus(report), to: textfile) {
            console.error(problem)
            // The run's result stands; a textfile that cannot be written makes an ok or warning run unknown.
            if status == .ok || status == .warning { status = .unknown }
        }
        return status
    }

    // MARK: - The run

    func runChecks() -> [CheckResult] {
        var results: [CheckResult] = []
        let thresholds = thresholds
        let deadlineWait = parseDuration(smokeWait) ?? 30
        let switchWait = parseDuration(switchTimeout) ?? 60

        // The primary.
        var primary: PostgresCheckSession?
        var primaryFacts: PrimaryFacts?
        var primaryLSN: UInt64?
        if let conninfo {
            do {
                let session = try PostgresCheckSession(conninfo: conninfo, connectTimeout: connectTimeout)
                if try session.isInRecovery() {
                    results.append(CheckResult("primary.connection", .critical, "\(session.description): the server is in recovery, not a primary",
                                               hints: ["-d must name the primary; give standbys with -s."]))
                } else {
                    primary = session
                    let control = try session.controlData()
                    let position = try session.currentPosition()
                    primaryLSN = position.lsn
                    primaryFacts = PrimaryFacts(systemIdentifier: control.systemIdentifier, timeline: position.timeline,
                                                segmentSize: control.segmentSize, ready: nil)
                    results.append(CheckResult("primary.connection", .ok,
                                               "\(session.description): PostgreSQL \(session.serverVersion / 10000), system identifier \(control.systemIdentifier), timeline \(position.timeline)"))
                }
            } catch {
                results.append(CheckResult("primary.connection", .critical, "could not connect to the primary: \(error.message)",
                                           hints: ["Is the server running, and does -d name it (host, port, user)?"]))
            }
        } else {
            results.append(CheckResult("primary.connection", .skipped, "needs the primary (-d)"))
        }
        let primaryChecks = ["primary.archive_settings", "primary.archiver", "primary.ready"]
        if let primary {
            do {
                results.append(primaryArchiveSettingsCheck(try primary.archiveSettings(), archive: archive))
            } catch {
                results.append(CheckResult("primary.archive_settings", .critical, "could not read the settings: \(error.message)"))
            }
            do {
                let (stats, now) = try primary.archiverStatistics()
                primaryFacts?.lastArchivedWAL = stats.lastArchivedWAL
                results.append(primaryArchiverCheck(stats, now: now))
            } catch {
                results.append(CheckResult("primary.archiver", .critical, "could not read pg_stat_archiver: \(error.message)"))
            }
        } else {
            results += primaryChecks.dropLast().map { CheckResult($0, .skipped, conninfo == nil ? "needs the primary (-d)" : "the primary could not be checked") }
        }

        // The smoke test's record, before --switch so that the switched segment carries it to an
        // archive-only standby.
        var messageLSN: UInt64?
        var smokeProblem: String?
        if let primary, !standbys.isEmpty, isSelected("standby.smoke") {
            do {
                messageLSN = try primary.emitSmokeMessage("smoke test at \(wallClockSeconds())")
            } catch {
                smokeProblem = "could not write the smoke test's message on the primary: \(error.message)"
            }
        }

        // --switch: the end-to-end test.
        if switchWAL {
            if let primary, let archive, isSelected("primary.switch") {
                results.append(runSwitch(primary, archive: archive, facts: primaryFacts, timeout: switchWait))
            } else {
                results.append(CheckResult("primary.switch", .skipped, primary == nil ? "the primary could not be checked" : "not chosen"))
            }
        } else {
            results.append(CheckResult("primary.switch", .skipped, "needs --switch"))
        }

        // The .ready files, after the switch: what is still waiting.
        if let primary {
            do {
                let ready = try primary.readyFiles()
                primaryFacts?.ready = Set(ready.names)
                results.append(primaryReadyCheck(ready, threshold: thresholds.readyAge))
            } catch {
                results.append(primaryReadyCheck(nil, threshold: thresholds.readyAge, unreadable: error.message))
            }
        } else {
            results.append(CheckResult("primary.ready", .skipped, conninfo == nil ? "needs the primary (-d)" : "the primary could not be checked"))
        }

        // The standbys.
        results += runStandbys(primaryLSN: primaryLSN, messageLSN: messageLSN, smokeProblem: smokeProblem,
                               hasPrimary: primary != nil, thresholds: thresholds, wait: deadlineWait)

        // The backups, then the archive (which continues from the oldest backup's start).
        var backupInfo: BackupDirectoryFacts?
        if let backups {
            backupInfo = readBackupDirectory(backups, segmentSize: primaryFacts?.segmentSize)
        }
        var archiveListing: ArchiveListing?
        var archiveIdentity: ArchiveIdentity?
        if let archive {
            var request = ArchiveCheckRequest(path: archive)
            request.primary = primaryFacts
            request.from = from.flatMap { WALFileName($0) }
            request.oldestBackupStart = backupInfo?.oldestStart
            request.deep = deep && isSelected("archive.deep")
            request.jobs = jobs ?? onlineCPUCount
            request.readerExpiry = readerExpiry.flatMap(parseReaderExpiry) ?? defaultReaderExpiry
            let outcome = runArchiveChecks(request)
            results += outcome.checks
            archiveListing = outcome.listing
            archiveIdentity = outcome.identity
        } else {
            results += ["archive.identity", "archive.continuity", "archive.timelines", "archive.deep", "archive.readers"].map {
                CheckResult($0, .skipped, "needs the archive (-A)")
            }
        }
        if let backups, let backupInfo {
            var request = BackupCheckRequest(path: backups, facts: backupInfo)
            request.archive = archive
            request.archiveListing = archiveListing
            request.segmentSize = archiveIdentity?.segmentSize ?? primaryFacts?.segmentSize
            request.thresholds = thresholds
            request.deep = deep && isSelected("backups.deep")
            request.jobs = jobs ?? onlineCPUCount
            request.now = Double(wallClockSeconds())
            results += runBackupChecks(request)
        } else {
            results += backupCheckNames.map { CheckResult($0, .skipped, "needs the backup directory (-B)") }
        }
        return results
    }

    /// --switch: a restore point and a WAL switch, then wait until the completed segment is in the
    /// archive and passes walferry-restore's checks.
    func runSwitch(_ primary: PostgresCheckSession, archive: String, facts: PrimaryFacts?, timeout: Double) -> CheckResult {
        let started = monotonicSeconds()
        let segment: String
        do {
            segment = try primary.switchWAL(restorePoint: "walferry-check \(wallClockSeconds())")
        } catch {
            return CheckResult("primary.switch", .critical, "could not switch WAL on the primary: \(error.message)",
                               hints: ["pg_create_restore_point and pg_switch_wal need a superuser, or EXECUTE granted on them."])
        }
        return waitForArchivedSegment(segment, archive: archive, systemIdentifier: facts?.systemIdentifier, since: started, timeout: timeout)
    }

    /// The standbys' checks, each with the smoke test.
    func runStandbys(primaryLSN: UInt64?, messageLSN: UInt64?, smokeProblem: String?, hasPrimary: Bool,
                     thresholds: CheckThresholds, wait: Double) -> [CheckResult] {
        guard !standbys.isEmpty else {
            return ["standby.recovery", "standby.receiver", "standby.lag", "standby.smoke"].map { CheckResult($0, .skipped, "needs a standby (-s)") }
        }
        struct Connected {
            let session: PostgresCheckSession
            let facts: StandbyFacts
            let labels: [(String, String)]
            var smoke: SmokeOutcome?
        }
        var results: [[CheckResult]] = Array(repeating: [], count: standbys.count)
        var connected: [Int: Connected] = [:]
        let started = monotonicSeconds()
        for (index, standby) in standbys.enumerated() {
            let labels = [("standby", standbyLabel(standby))]
            do {
                let session = try PostgresCheckSession(conninfo: standby, connectTimeout: connectTimeout)
                let facts = try session.standbyFacts()
                results[index].append(standbyRecoveryCheck(facts, labels: labels))
                if facts.inRecovery {
                    results[index].append(standbyReceiverCheck(facts, labels: labels))
                    results[index].append(standbyLagCheck(facts, primaryLSN: primaryLSN, thresholds: thresholds, labels: labels))
                    connected[index] = Connected(session: session, facts: facts, labels: labels)
                } else {
                    results[index] += ["standby.receiver", "standby.lag", "standby.smoke"].map { CheckResult($0, .skipped, "not a standby", labels: labels) }
                }
            } catch {
                results[index].append(CheckResult("standby.recovery", .critical, "could not connect to the standby: \(error.message)",
                                                  hints: ["Is the standby running? Its server log says why it stopped."], labels: labels))
                results[index] += ["standby.receiver", "standby.lag", "standby.smoke"].map {
                    CheckResult($0, .skipped, "the standby could not be reached", labels: labels)
                }
            }
        }
        // The smoke test: wait until each standby has replayed past the message, with one deadline.
        if let messageLSN {
            for (index, standby) in connected where standby.facts.isArchiveOnly && !switchWAL {
                connected[index]?.smoke = .notWaited(replayLSN: standby.facts.replayLSN, lastReplayAge: standby.facts.lastReplayAge)
            }
            let deadline = started + wait
            while true {
                var pending = false
                for (index, standby) in connected where standby.smoke == nil {
                    if let replay = try? standby.session.replayPosition(), replay >= messageLSN {
                        connected[index]?.smoke = .replayed(seconds: monotonicSeconds() - started)
                    } else {
                        pending = true
                    }
                }
                if !pending { break }
                if monotonicSeconds() >= deadline {
                    for (index, standby) in connected where standby.smoke == nil {
                        connected[index]?.smoke = .timedOut(deadline: wait, replayLSN: try? standby.session.replayPosition())
                    }
                    break
                }
                usleep(20_000)
            }
        }
        for (index, standby) in connected {
            if let smoke = standby.smoke, let messageLSN {
                results[index].append(standbySmokeCheck(smoke, messageLSN: messageLSN, labels: standby.labels))
            } else if let smokeProblem {
                results[index].append(CheckResult("standby.smoke", .critical, smokeProblem,
                                                  hints: ["pg_logical_emit_message needs a superuser, or EXECUTE granted on it."], labels: standby.labels))
            } else {
                results[index].append(CheckResult("standby.smoke", .skipped, hasPrimary ? "not chosen" : "needs the primary (-d)", labels: standby.labels))
            }
        }
        return results.flatMap { $0 }
    }
}

/// A standby's label: `host:port` from a key=value conninfo, else the conninfo itself without any
/// password.
func standbyLabel(_ conninfo: String) -> String {
    let words = conninfo.split(separator: " ")
    let pairs = words.compactMap { word -> (String, String)? in
        let parts = word.split(separator: "=", maxSplits: 1)
        return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
    }
    if !pairs.isEmpty {
        let host = pairs.first { $0.0 == "host" }?.1 ?? "localhost"
        let port = pairs.first { $0.0 == "port" }?.1 ?? "5432"
        return "\(host):\(port)"
    }
    // A URI: drop the credentials.
    if let at = conninfo.firstIndex(of: "@"), let colon = conninfo.firstIndex(of: ":"), colon < at {
        let scheme = conninfo[..<colon]
        return scheme + "://" + String(conninfo[conninfo.index(after: at)...])
    }
    return conninfo
}
