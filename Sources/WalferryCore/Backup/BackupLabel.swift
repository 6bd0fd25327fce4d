// What walferry-backup reads from the labelfile that pg_backup_stop returns, and the WAL segments a
// backup needs.
//
// Like the server's read_backup_label (the same two lines, "START WAL LOCATION: %X/%X (file %24s)" and
// "START TIMELINE: %u"), but read only for the start file and timeline: the labelfile itself goes into
// the tarball byte for byte, never re-rendered. Older servers (9.6, 10) have no START TIMELINE line;
// the timeline is then the start file's first eight hex digits.

/// The start of a backup, from its labelfile.
public struct BackupLabel: Sendable, Equatable {
    public let startLSN: UInt64
    /// The segment holding the start (checkpoint REDO) location, with the backup's timeline.
    public let startWALFile: String
    public let timeline: UInt32

    /// Parses a labelfile; nil when its first line is not what every server version writes.
    public init?(labelfile: [UInt8]) {
        let text = String(decoding: labelfile, as: UTF8.self)
        var start: (UInt64, String)?
        var timeline: UInt32?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("START WAL LOCATION: ") {
                // START WAL LOCATION: 0/7000028 (file 000000010000000000000007)
                let words = line.dropFirst("START WAL LOCATION: ".count).split(separator: " ")
                guard words.count == 3, words[1] == "(file", words[2].hasSuffix(")"),
                      let lsn = parseLSN(words[0]) else { return nil }
                let file = String(words[2].dropLast())
                guard file.count == 24, file.utf8.allSatisfy({ isUpperHexDigit($0) }) else { return nil }
                start = (lsn, file)
            } else if line.hasPrefix("START TIMELINE: ") {
                timeline = UInt32(line.dropFirst("START TIMELINE: ".count))
            }
        }
        guard let (lsn, file) = start, let fileTimeline = UInt32(file.prefix(8), radix: 16) else { return nil }
        startLSN = lsn
        startWALFile = file
        self.timeline = timeline ?? fileTimeline
    }
}

private func isUpperHexDigit(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
}

/// The names of the WAL segments a backup needs to be consistent: from the one holding `startLSN` to
/// the one holding the last byte before `stopLSN` (the server's XLByteToPrevSeg, as its own base
/// backup with WAL uses), on `timeline`.
public func walSegmentsNeeded(timeline: UInt32, startLSN: UInt64, stopLSN: UInt64, segmentSize: UInt64) -> [String]? {
    guard segmentSize > 0, stopLSN > startLSN, let size = WALSegmentSize(bytes: segmentSize) else { return nil }
    let first = startLSN / segmentSize
    let last = (stopLSN - 1) / segmentSize
    guard last >= first, last - first < 1 << 20 else { return nil }
    return (first...last).map { WALFileName(timeline: timeline, segmentNumber: $0, segmentSize: size).description }
}

/// The name of the segment that holds `lsn`.
public func walSegmentName(timeline: UInt32, lsn: UInt64, segmentSize: UInt64) -> String? {
    guard segmentSize > 0, let size = WALSegmentSize(bytes: segmentSize) else { return nil }
    return WALFileName(timeline: timeline, segmentNumber: lsn / segmentSize, segmentSize: size).description
}
