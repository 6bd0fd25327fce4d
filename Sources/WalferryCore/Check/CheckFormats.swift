// walferry-check's four output formats, as pure functions of a CheckReport.
//
// - human: like `barman check`'s list (one line per check, its status, the figure), except that each
//   problem comes with its hint lines, and colour only when asked (on a terminal);
// - nagios: the Nagios plugin API's output (Nagios Plugin Development Guidelines, "Plugin Output" and
//   "Performance data"): one status line `WALFERRY <STATUS> - text | perfdata`, where each perfdata
//   item is `'label'=value[UOM];[warn];[crit]`, then one line per check (long text);
// - json: one object, `{"status": ..., "checks": [...]}`, every check with its figures;
// - prometheus: the text exposition format (version 0.0.4): for each metric a `# HELP` and a
//   `# TYPE ... gauge` line, then its samples, labels escaped as the format requires; the samples of
//   one metric are grouped, as parsers require.

// MARK: - Human

/// One line per check, `status  name  message`, then its hints; a summary line last. `colour` adds
/// ANSI colours to the status words.
public func formatHuman(_ report: CheckReport, colour: Bool) -> String {
    let width = report.checks.map { $0.displayName.count }.max() ?? 0
    var out = ""
    for check in report.checks {
        var word = check.status.rawValue.padding(to: 8)
        if colour, let code = ansiColour(check.status) { word = "\u{1B}[\(code)m\(word)\u{1B}[0m" }
        out += word + " " + check.displayName.padding(to: width) + "  " + check.message + "\n"
        if check.status != .ok && check.status != .skipped {
            for hint in check.hints { out += "         hint: " + hint + "\n" }
        }
    }
    out += "status: " + report.status.rawValue + " (" + countsText(report) + ")\n"
    return out
}

private func ansiColour(_ status: CheckStatus) -> String? {
    switch status {
    case .ok: "32"
    case .warning: "33"
    case .critical: "31"
    case .unknown: "35"
    case .skipped: nil
    }
}

/// "1 critical, 2 warning, 9 ok, 3 skipped": the statuses that occur, worst first.
private func countsText(_ report: CheckReport) -> String {
    let order: [CheckStatus] = [.critical, .unknown, .warning, .ok, .skipped]
    return order.compactMap { status in
        let count = report.checks.filter { $0.status == status }.count
        return count == 0 ? nil : "\(count) \(status.rawValue)"
    }.joined(separator: ", ")
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

// MARK: - Nagios

/// `WALFERRY STATUS - summary | perfdata`, then one line per check: `status name: message`.
public func formatNagios(_ report: CheckReport) -> String {
    let status = report.status
    let problems = report.checks.filter { $0.status != .ok && $0.status != .skipped }
        .sorted { $0.status.severity > $1.status.severity }
    var summary: String
    if problems.isEmpty {
        let ran = report.checks.filter { $0.status == .ok }.count
        summary = ran == 0 ? "no check ran" : "\(ran) checks ok"
    } else {
        summary = problems.map { "\($0.displayName): \($0.message)" }.joined(separator: "; ")
    }
    // "|" separates the perfdata: it must not appear in the text.
    summary = summary.replacingBars()
    var line = "WALFERRY \(status.nagiosWord) - \(summary)"
    let perfdata = report.checks.flatMap { check in check.figures.map { nagiosPerfdata(check, $0) } }
    if !perfdata.isEmpty { line += " | " + perfdata.joined(separator: " ") }
    var out = line + "\n"
    for check in report.checks {
        out += "\(check.status.rawValue) \(check.displayName): \(check.message)".replacingBars() + "\n"
    }
    return out
}

extension String {
    fileprivate func replacingBars() -> String {
        String(map { $0 == "|" ? "/" : $0 == "\n" ? " " : $0 })
    }
}

/// `'label'=value[UOM];[warn];[crit]`. The label is the figure's name with its subject; it is quoted
/// when it holds anything but letters, digits and `_.-`, and a quote in it is doubled.
func nagiosPerfdata(_ check: CheckResult, _ figure: CheckFigure) -> String {
    // The metric's name, unit included, so that a figure in bytes and one in seconds get two labels.
    var label = String(figure.metricName.dropFirst("walferry_".count))
    if !check.labels.isEmpty { label += "[" + check.labels.map(\.1).joined(separator: ",") + "]" }
    label = String(label.map { $0.isNewline ? " " : $0 })
    let plain = label.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || "_.-".unicodeScalars.contains($0) }
    let quoted = plain ? label : "'" + label.replacingQuotes() + "'"
    let unit: String
    switch figure.unit {
    case .bytes: unit = "B"
    case .seconds: unit = "s"
    case .count, .number: unit = ""
    }
    var item = "\(quoted)=\(formatNumber(figure.value))\(unit)"
    let warning = figure.warning.map(formatNumber) ?? "", critical = figure.critical.map(formatNumber) ?? ""
    if !warning.isEmpty || !critical.isEmpty { item += ";\(warning);\(critical)" }
    return item
}

extension String {
    fileprivate func replacingQuotes() -> String {
        var out = ""
        for character in self {
            if character == "'" { out += "''" } else if character == "=" || character == "|" { out += "_" } else { out.append(character) }
        }
        return out
    }
}

/// A number as every format writes it: an integer without a fraction, else at most 3 decimals.
public func formatNumber(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    if value == value.rounded(), abs(value) < 9.0e15 { return String(Int64(value)) }
    let scaled = (value * 1000).rounded() / 1000
    if scaled == scaled.rounded(), abs(scaled) < 9.0e15 { return String(Int64(scaled)) }
    var text = String(scaled)
    if text.contains("e") { text = String(Int64(scaled.rounded())) }
    return text
}

// MARK: - JSON

/// `{"status": "...", "exit_status": N, "checks": [{"name", "status", "message", "hints", "labels",
/// "figures": {"metric_name": value}}]}`, on one line; hints only for problems.
public func formatJSON(_ report: CheckReport) -> String {
    func string(_ text: String) -> String { String(decoding: jsonString(Array(text.utf8)), as: UTF8.self) }
    var out = "{\"status\": \(string(report.status.rawValue)), \"exit_status\": \(report.exitStatus.rawValue), \"checks\": ["
    for (index, check) in report.checks.enumerated() {
        if index > 0 { out += ", " }
        out += "{\"name\": \(string(check.name)), \"status\": \(string(check.status.rawValue)), \"message\": \(string(check.message))"
        // Hints are for problems, as in the other formats.
        let hints = check.status == .ok || check.status == .skipped ? [] : check.hints
        out += ", \"hints\": [" + hints.map(string).joined(separator: ", ") + "]"
        out += ", \"labels\": {" + check.labels.map { "\(string($0.0)): \(string($0.1))" }.joined(separator: ", ") + "}"
        out += ", \"figures\": {" + check.figures.map { figure in
            "\(string(String(figure.metricName.dropFirst("walferry_".count)))): \(formatNumber(figure.value))"
        }.joined(separator: ", ") + "}}"
    }
    out += "]}\n"
    return out
}

// MARK: - Prometheus

/// The text exposition format: `walferry_check_status{check=...}` (the exit status each check gives,
/// skipped checks left out), `walferry_status` (the run's), `walferry_check_timestamp_seconds`, and
/// every figure as a gauge named by CheckFigure.metricName, labelled by check and subject.
public func formatPrometheus(_ report: CheckReport) -> String {
    var families: [(name: String, help: String, samples: [String])] = []
    func add(_ name: String, help: String, labels: [(String, String)], value: Double) {
        let sample = name + prometheusLabels(labels) + " " + formatNumber(value)
        if let index = families.firstIndex(where: { $0.name == name }) {
            families[index].samples.append(sample)
        } else {
            families.append((name, help, [sample]))
        }
    }
    add("walferry_status", help: "The exit status of the run: 0 ok, 1 warning, 2 critical, 3 unknown.",
        labels: [], value: Double(report.exitStatus.rawValue))
    add("walferry_check_timestamp_seconds", help: "When the run ended, in seconds since the epoch.",
        labels: [], value: Double(report.finishedAt))
    for check in report.checks where check.status != .skipped {
        add("walferry_check_status", help: "Each check's status: 0 ok, 1 warning, 2 critical, 3 unknown.",
            labels: [("check", check.name)] + check.labels, value: Double(check.status.exitStatus.rawValue))
    }
    for check in report.checks where check.status != .skipped {
        for figure in check.figures {
            add(figure.metricName, help: "walferry-check's \(figure.name.replacingOccurrences("_", " ")) (\(figure.unit.rawValue)).",
                labels: [("check", check.name)] + check.labels, value: figure.value)
        }
    }
    var out = ""
    for family in families {
        out += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) gauge\n"
        for sample in family.samples { out += sample + "\n" }
    }
    return out
}

/// `{name="value",...}`, values escaped (backslash, double quote, newline); empty for no labels.
func prometheusLabels(_ labels: [(String, String)]) -> String {
    guard !labels.isEmpty else { return "" }
    return "{" + labels.map { name, value in
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return "\(name)=\"\(escaped)\""
    }.joined(separator: ",") + "}"
}

extension String {
    fileprivate func replacingOccurrences(_ target: Character, _ replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
