// backup_manifest, in the format the server's own base backup writes, so that pg_verifybackup checks
// a walferry backup once it is extracted.
//
// Equivalent to PostgreSQL's backup_manifest.c (version 1 up to 16; version 2 with System-Identifier
// from 17, whose pg_verifybackup compares it with global/pg_control): one JSON object per line, files
// in the order they were written, CRC-32C checksums as the hex of the CRC's little-endian bytes, the
// WAL range from the backup's start to its stop, and a SHA-256 of everything before the final line.
// It differs only in what is listed: tablespace files appear under pg_tblspc/<oid>/ as the server
// lists them, and WAL that --wal-archive puts in pg_wal/ is not listed (pg_verifybackup skips pg_wal).

/// Builds a manifest as files are written to the backup.
public struct BackupManifest: Sendable {
    /// 1, or 2 for PostgreSQL 17 and later.
    public let version: Int
    public let systemIdentifier: UInt64
    private var fileLines: [[UInt8]] = []

    public init(serverMajorVersion: Int, systemIdentifier: UInt64) {
        version = serverMajorVersion >= 17 ? 2 : 1
        self.systemIdentifier = systemIdentifier
    }

    /// The number of files listed so far.
    public var fileCount: Int { fileLines.count }

    /// Lists a file: its path relative to the restored data directory, the bytes written for it, its
    /// modification time, and the CRC-32C of those bytes.
    public mutating func addFile(path: [UInt8], size: UInt64, mtime: Int64, crc32c: UInt32) {
        var line = Array("{ ".utf8)
        if isValidUTF8(path) {
            line += Array("\"Path\": ".utf8) + jsonString(path)
        } else {
            line += Array("\"Encoded-Path\": \"\(lowerHex(path))\"".utf8)
        }
        line += Array(", \"Size\": \(size), \"Last-Modified\": \"\(manifestTimestamp(mtime))\"".utf8)
        // The CRC's bytes in memory order on the server (little-endian on every platform PostgreSQL
        // builds for today), not the number written in hex.
        let littleEndian = [UInt8(truncatingIfNeeded: crc32c), UInt8(truncatingIfNeeded: crc32c >> 8),
                            UInt8(truncatingIfNeeded: crc32c >> 16), UInt8(truncatingIfNeeded: crc32c >> 24)]
        line += Array(", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"\(lowerHex(littleEndian))\" }".utf8)
        fileLines.append(line)
    }

    /// The manifest's bytes, with one WAL range (the backup's timeline, start and stop LSNs).
    public func encoded(timeline: UInt32, startLSN: UInt64, endLSN: UInt64) -> [UInt8] {
        var text = Array("{ \"PostgreSQL-Backup-Manifest-Version\": \(version),\n".utf8)
        if version >= 2 { text += Array("\"System-Identifier\": \(systemIdentifier),\n".utf8) }
        text += Array("\"Files\": [".utf8)
        for (index, line) in fileLines.enumerated() {
            text += Array((index == 0 ? "\n" : ",\n").utf8)
            text += line
        }
        text += Array("\n],\n".utf8)
        text += Array("\"WAL-Ranges\": [\n".utf8)
        text += Array("{ \"Timeline\": \(timeline), \"Start-LSN\": \"\(formatLSN(startLSN))\", \"End-LSN\": \"\(formatLSN(endLSN))\" }".utf8)
        text += Array("\n],\n".utf8)
        let checksum = SHA256.hexDigest(text)
        text += Array("\"Manifest-Checksum\": \"\(checksum)\"}\n".utf8)
        return text
    }
}

/// "YYYY-MM-DD HH:MM:SS GMT", the server's Last-Modified format.
func manifestTimestamp(_ seconds: Int64) -> String {
    let t = utcComponents(seconds)
    return "\(zeroPadded(t.year, 4))-\(zeroPadded(t.month, 2))-\(zeroPadded(t.day, 2)) "
        + "\(zeroPadded(t.hour, 2)):\(zeroPadded(t.minute, 2)):\(zeroPadded(t.second, 2)) GMT"
}

/// True when `bytes` are valid UTF-8 (the server writes Encoded-Path otherwise).
func isValidUTF8(_ bytes: [UInt8]) -> Bool {
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    while true {
        switch decoder.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// A JSON string literal, escaped as the server's escape_json does.
func jsonString(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\""): out += Array("\\\"".utf8)
        case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
        case 0x08: out += Array("\\b".utf8)
        case 0x0C: out += Array("\\f".utf8)
        case 0x0A: out += Array("\\n".utf8)
        case 0x0D: out += Array("\\r".utf8)
        case 0x09: out += Array("\\t".utf8)
        case ..<0x20: out += Array("\\u00".utf8) + Array(lowerHex([byte]).utf8)
        default: out.append(byte)
        }
    }
    out.append(UInt8(ascii: "\""))
    return out
}
