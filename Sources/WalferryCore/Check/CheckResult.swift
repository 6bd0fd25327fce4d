// walferry-check's results as data: each check's name, status, message, hints and figures, and the
// report they make together, with its exit status.
//
// Like the Nagios plugin API's states (OK, WARNING, CRITICAL, UNKNOWN, with the same exit codes) and
// Barman's `check` list of named checks, except that a check whose inputs were not given is kept in the
// report as `skipped`, with the reason, instead of being left out; and the figures (lag, ages, counts)
// are typed with their unit and thresholds so that every output format (CheckFormats.swift) is a pure
// function of the report.

/// The status of one check.
public enum CheckStatus: String, Sendable, CaseIterable {
    case ok
    case warning
    case critical
    case unknown
    /// Not run: its inputs were not given, or it was not chosen. Never changes the exit status.
    case skipped

    /// How bad a status is when the worst is picked: skipped < ok < warning < unknown < critical. A
    /// critical problem found by one check is not hidden by another check that could not judge.
    public var severity: Int {
        switch self {
        case .skipped: 0
        case .ok: 1
        case .warning: 2
        case .unknown: 3
        case .critical: 4
        }
    }

    /// The Nagios word: OK, WARNING, CRITICAL, UNKNOWN (skipped reads as OK).
    public var nagiosWord: String { self == .skipped ? "OK" : rawValue.uppercased() }

    /// The value of the Prometheus gauge walferry_check_status: the exit status this status gives.
    public var exitStatus: CheckExitStatus {
        switch self {
        case .ok, .skipped: .ok
        case .warning: .warning
        case .critical: .critical
        case .unknown: .unknown
        }
    }
}

/// The exit statuses of walferry-check, those of the Nagios plugin API. The man page's EXIT STATUS
/// section lists the same.
public enum CheckExitStatus: Int32, ToolExitStatus, CaseIterable {
    /// Every check that ran is ok.
    case ok = 0
    /// At least one check is warning, none worse.
    case warning = 1
    /// At least one check is critical: a server, standby, archive or backup directory that cannot be
    /// reached or read, a missing segment, a failing archiver...
    case critical = 2
    /// walferry-check could not judge: a usage error, no input given at all, or a check that could not
    /// decide (and nothing critical).
    case unknown = 3
}

/// A measured figure of a check, with its unit and the thresholds it was judged against.
public struct CheckFigure: Sendable, Equatable {
    public enum Unit: String, Sendable {
        case bytes
        case seconds
        /// A plain number (files, segments, backups); no unit suffix in Prometheus, none in Nagios.
        case count
        /// A timeline number, a status code: no unit.
        case number
    }

    /// A snake_case name, unique within the report once labels are added: `standby_replay_lag`.
    public var name: String
    public var value: Double
    public var unit: Unit
    public var warning: Double?
    public var critical: Double?

    public init(_ name: String, _ value: Double, _ unit: Unit, warning: Double? = nil, critical: Double? = nil) {
        self.name = name
        self.value = value
        self.unit = unit
        self.warning = warning
        self.critical = critical
    }

    /// The Prometheus metric name: `walferry_` + name + the unit's suffix (`_bytes`, `_seconds`).
    public var metricName: String {
        switch unit {
        case .bytes: "walferry_\(name)_bytes"
        case .seconds: "walferry_\(name)_seconds"
        case .count, .number: "walferry_\(name)"
        }
    }
}

/// One check's outcome.
public struct CheckResult: Sendable, Equatable {
    /// `group.check`: `archive.continuity`, `standby.smoke`.
    public var name: String
    public var status: CheckStatus
    /// One line: what was found, with the figure.
    public var message: String
    /// What to do about a problem.
    public var hints: [String]
    public var figures: [CheckFigure]
    /// What the check is about, beyond its name: ("standby", "host:port"), ("archive", "/mnt/archive").
    public var labels: [(String, String)]

    public init(_ name: String, _ status: CheckStatus, _ message: String, hints: [String] = [],
                figures: [CheckFigure] = [], labels: [(String, String)] = []) {
        self.name = name
        self.status = status
        self.message = message
        self.hints = hints
        self.figures = figures
        self.labels = labels
    }

    /// The name with its subject, for people, on one line: `standby.lag[/tmp/sock:5432]`.
    public var displayName: String {
        let text = labels.isEmpty ? name : name + "[" + labels.map(\.1).joined(separator: ",") + "]"
        return String(text.map { $0.isNewline ? " " : $0 })
    }

    public static func == (a: CheckResult, b: CheckResult) -> Bool {
        a.name == b.name && a.status == b.status && a.message == b.message && a.hints == b.hints
            && a.figures == b.figures && a.labels.map(\.0) == b.labels.map(\.0) && a.labels.map(\.1) == b.labels.map(\.1)
    }
}

/// Every check of one run.
public struct CheckReport: Sendable, Equatable {
    public var checks: [CheckResult]
    /// When the run ended, in seconds since the epoch (Prometheus' walferry_check_timestamp_seconds).
    public var finishedAt: Int64

    public init(checks: [CheckResult], finishedAt: Int64) {
        self.checks = checks
        self.finishedAt = finishedAt
    }

    /// The worst status of the checks that ran (CheckStatus.severity); unknown when none ran.
    public var status: CheckStatus {
        let ran = checks.filter { $0.status != .skipped }
        guard let worst = ran.max(by: { $0.status.severity < $1.status.severity }) else { return .unknown }
        return worst.status
    }

    public var exitStatus: CheckExitStatus { status.exitStatus }
}

/// A threshold pair: a figure above `warning` is a warning, above `critical` critical. Nil is off.
public struct Threshold: Sendable, Equatable {
    public var warning: Double?
    public var critical: Double?

    public init(warning: Double?, critical: Double?) {
        self.warning = warning
        self.critical = critical
    }

    public func judge(_ value: Double) -> CheckStatus {
        if let critical, value > critical { return .critical }
        if let warning, value > warning { return .warning }
        return .ok
    }
}
