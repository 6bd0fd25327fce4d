// The clocks: monotonic for deadlines and rates, the wall clock for timestamps, and UTC broken down
// for the names of backups.
//
// Like Foundation's Date and ContinuousClock, without Foundation (Threads.swift says why).

import Glibc

/// The monotonic clock, in seconds: for deadlines, heartbeats and progress rates. The corresponding C
/// function is `clock_gettime(CLOCK_MONOTONIC)`.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Seconds since the epoch, for timestamps. The corresponding C function is `time`.
public func wallClockSeconds() -> Int64 { Int64(time(nil)) }

/// A UTC broken-down time. The corresponding C function is `gmtime_r`.
func utcComponents(_ seconds: Int64) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
    var value = time_t(seconds)
    var parts = tm()
    gmtime_r(&value, &parts)
    return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec))
}

/// `value` in decimal, left-padded with zeros to `width` digits.
func zeroPadded(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
