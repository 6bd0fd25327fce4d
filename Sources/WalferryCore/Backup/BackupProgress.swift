// The progress line: bytes copied of the total, rate, and time left.
//
// Like pg_basebackup -P (one line rewritten with a carriage return on a terminal), with a rate and an
// ETA, and shown by default only when standard error is a terminal, so that cron mails stay empty.
// Without a terminal (-P forced) a full line is printed every ten seconds instead, since a log file
// has no use for carriage returns.

import Glibc

/// Counts the bytes copied and redraws the line at most twice a second.
final class BackupProgress {
    private let total: UInt64
    private var done: UInt64 = 0
    private let started = monotonicSeconds()
    private var lastDrawn = 0.0
    private let terminal: Bool
    private var drewSomething = false
    private let program: String

    init(total: UInt64, program: String = "walferry-backup") {
        self.total = total
        self.program = program
        terminal = isatty(2) == 1
    }

    /// `count` more bytes copied.
    func advance(_ count: UInt64) {
        done += count
        let now = monotonicSeconds()
        if now - lastDrawn >= (terminal ? 0.5 : 10) { draw(now) }
    }

    /// A file that was counted in the total and vanished.
    func skip(_ count: UInt64) { advance(count) }

    /// Draws the final state and ends the line.
    func finish() {
        draw(monotonicSeconds())
        if terminal && drewSomething { emit("\n") }
    }

    private func draw(_ now: Double) {
        lastDrawn = now
        let elapsed = max(now - started, 0.001)
        let rate = Double(done) / elapsed
        let percent = total > 0 ? min(100, Int(Double(done) * 100 / Double(total))) : 100
        var line = "\(program): \(formatBytes(done)) of \(formatBytes(total)) (\(percent)%), \(formatBytes(UInt64(rate)))/s"
        if rate > 0 && done < total {
            line += ", ETA \(formatDuration(Double(total - done) / rate))"
        }
        if terminal {
            // Spaces wipe what a longer previous line left.
            emit("\r" + line + "    ")
        } else {
            emit(line + "\n")
        }
        drewSomething = true
    }

    private func emit(_ text: String) {
        var copy = text
        copy.withUTF8 { _ = writeAll(2, UnsafeRawBufferPointer($0)) }
    }
}

/// "512 B", "12.3 MB", "1.5 GB" (powers of 1000, as rates are usually read).
func formatBytes(_ count: UInt64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var value = Double(count)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    if unit == 0 { return "\(count) B" }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[unit])"
}

/// "0:42", "1:02:03".
func formatDuration(_ seconds: Double) -> String {
    let total = Int(seconds.rounded(.up))
    let hours = total / 3600, minutes = total / 60 % 60, rest = total % 60
    return hours > 0 ? "\(hours):\(zeroPadded(minutes, 2)):\(zeroPadded(rest, 2))" : "\(minutes):\(zeroPadded(rest, 2))"
}
