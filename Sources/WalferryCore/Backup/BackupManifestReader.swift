// Reading a backup_manifest: the server's (pg_basebackup's) and walferry-backup's, which write the
// same format (BackupManifest.swift).
//
// Like PostgreSQL's parse_manifest.c (src/common/parse_manifest.c), which pg_verifybackup and
// pg_combinebackup use, except that the JSON is parsed whole into a small tree first (manifests are
// a few MB at most) instead of through a streaming JSON parser with callbacks. The same rules: version
// 1 or 2, System-Identifier only in version 2, each file with Path or Encoded-Path (hex), Size, an
// optional Checksum-Algorithm and Checksum, WAL-Ranges with Timeline, Start-LSN and End-LSN, and the
// Manifest-Checksum: the SHA-256 of everything up to and including the newline that ends the
// line before it, checked before anything in the manifest is trusted.

/// A checksum algorithm a manifest names for its files (pg_checksum_type).
public enum ManifestChecksumAlgorithm: String, Sendable, Equatable {
    case none = "NONE", crc32c = "CRC32C", sha224 = "SHA224", sha256 = "SHA256", sha384 = "SHA384", sha512 = "SHA512"
}

/// One file listed in a manifest.
public struct ManifestFile: Sendable, Equatable {
    /// The path relative to the restored data directory (from Path, or decoded from Encoded-Path).
    public let path: [UInt8]
    public let size: UInt64
    public let algorithm: ManifestChecksumAlgorithm
    /// The checksum's bytes (for CRC32C, the CRC's little-endian bytes, as the server writes them).
    public let checksum: [UInt8]
    /// Last-Modified, in seconds since the epoch, when present and readable.
    public let lastModified: Int64?

    /// The path for messages.
    public var displayPath: String { String(decoding: path, as: UTF8.self) }
}

/// One WAL range of a manifest: the WAL the backup needs, on one timeline.
public struct ManifestWALRange: Sendable, Equatable {
    public let timeline: UInt32
    public let startLSN: UInt64
    public let endLSN: UInt64
}

/// A parsed, checksum-verified backup_manifest.
public struct ParsedBackupManifest: Sendable {
    public let version: Int
    /// Present from version 2 (PostgreSQL 17).
    public let systemIdentifier: UInt64?
    /// The files, in the manifest's order.
    public let files: [ManifestFile]
    /// The WAL ranges, oldest first (one for a backup taken on one timeline).
    public let walRanges: [ManifestWALRange]

    /// Parses and verifies `bytes`; `name` is the manifest's path for messages. Throws a `.damaged`
    /// problem for anything the server's parser would refuse, and for a wrong Manifest-Checksum.
    public init(parsing bytes: [UInt8], name: String) throws(BackupProblem) {
        func damaged(_ reason: String) -> BackupProblem {
            BackupProblem(.damaged, "could not parse backup manifest \"\(name)\": \(reason)")
        }
        // The checksum first: everything before the last line (the file must end with a newline).
        guard bytes.last == UInt8(ascii: "\n") else { throw damaged("last line not newline-terminated") }
        guard let cut = bytes.dropLast().lastIndex(of: UInt8(ascii: "\n")) else { throw damaged("expected at least 2 lines") }
        let root: JSONValue
        do {
            var parser = JSONParser(bytes: bytes)
            root = try parser.parseDocument()
        } catch {
            throw damaged(error.reason)
        }
        guard case .object(let fields) = root else { throw damaged("the manifest is not a JSON object") }
        func field(_ key: String) -> JSONValue? { fields.first { $0.0 == key }?.1 }

        guard let versionValue = field("PostgreSQL-Backup-Manifest-Version"), let version = versionValue.integer,
              version == 1 || version == 2 else {
            throw damaged("unexpected manifest version")
        }
        self.version = Int(version)
        if let identifier = field("System-Identifier") {
            guard version >= 2, case .number(let text) = identifier, let value = UInt64(text) else {
                throw damaged("unexpected System-Identifier")
            }
            systemIdentifier = value
        } else {
            guard version == 1 else { throw damaged("missing System-Identifier") }
            systemIdentifier = nil
        }
        guard case .string(let expectedChecksum)? = field("Manifest-Checksum") else { throw damaged("missing Manifest-Checksum") }
        let actual = SHA256.hexDigest(bytes[...cut])
        guard String(decoding: expectedChecksum, as: UTF8.self).lowercased() == actual else {
            throw BackupProblem(.damaged, "backup manifest \"\(name)\" checksum mismatch: actual \(actual), expected \(String(decoding: expectedChecksum, as: UTF8.self))")
        }

        guard case .array(let fileValues)? = field("Files") else { throw damaged("missing Files") }
        var files: [ManifestFile] = []
        files.reserveCapacity(fileValues.count)
        for value in fileValues {
            guard case .object(let entry) = value else { throw damaged("a Files entry is not an object") }
            func item(_ key: String) -> JSONValue? { entry.first { $0.0 == key }?.1 }
            let path: [UInt8]
            if case .string(let plain)? = item("Path") {
                path = plain
            } else if case .string(let encoded)? = item("Encoded-Path"), let decoded = decodeHex(encoded) {
                path = decoded
            } else {
                throw damaged("a file has neither Path nor a valid Encoded-Path")
            }
            guard let size = item("Size")?.integer.flatMap({ UInt64(exactly: $0) }) else {
                throw damaged("file \"\(String(decoding: path, as: UTF8.self))\" has no valid Size")
            }
            var algorithm = ManifestChecksumAlgorithm.none
            var checksum: [UInt8] = []
            if case .string(let algorithmName)? = item("Checksum-Algorithm") {
                guard let known = ManifestChecksumAlgorithm(rawValue: String(decoding: algorithmName, as: UTF8.self).uppercased()) else {
                    throw damaged("unrecognized checksum algorithm \"\(String(decoding: algorithmName, as: UTF8.self))\"")
                }
                algorithm = known
                if known != .none {
                    guard case .string(let hex)? = item("Checksum"), let decoded = decodeHex(hex) else {
                        throw damaged("invalid checksum for file \"\(String(decoding: path, as: UTF8.self))\"")
                    }
                    checksum = decoded
                }
            }
            var modified: Int64?
            if case .string(let text)? = item("Last-Modified") { modified = parseManifestTimestamp(text) }
            files.append(ManifestFile(path: path, size: size, algorithm: algorithm, checksum: checksum, lastModified: modified))
        }
        self.files = files

        guard case .array(let rangeValues)? = field("WAL-Ranges") else { throw damaged("missing WAL-Ranges") }
        var ranges: [ManifestWALRange] = []
        for value in rangeValues {
            guard case .object(let entry) = value else { throw damaged("a WAL-Ranges entry is not an object") }
            func item(_ key: String) -> JSONValue? { entry.first { $0.0 == key }?.1 }
            guard let timeline = item("Timeline")?.integer.flatMap({ UInt32(exactly: $0) }),
                  case .string(let start)? = item("Start-LSN"), let startLSN = parseLSN(String(decoding: start, as: UTF8.self)),
                  case .string(let end)? = item("End-LSN"), let endLSN = parseLSN(String(decoding: end, as: UTF8.self)) else {
                throw damaged("invalid WAL-Ranges entry")
            }
            ranges.append(ManifestWALRange(timeline: timeline, startLSN: startLSN, endLSN: endLSN))
        }
        guard !ranges.isEmpty else { throw damaged("no WAL-Ranges entry") }
        walRanges = ranges
    }

    /// The backup's timeline and start (the oldest range's) and end (the newest range's) locations.
    public var timeline: UInt32 { walRanges[walRanges.count - 1].timeline }
    public var startLSN: UInt64 { walRanges[0].startLSN }
    public var endLSN: UInt64 { walRanges[walRanges.count - 1].endLSN }

    /// When the backup stopped: backup_label's Last-Modified, which walferry-backup and the server
    /// both give the time of the stop. Nil when the manifest does not list it.
    public var stopTime: Int64? {
        files.first { $0.path.elementsEqual("backup_label".utf8) }?.lastModified
    }
}

/// "YYYY-MM-DD HH:MM:SS GMT" to seconds since the epoch.
func parseManifestTimestamp(_ text: [UInt8]) -> Int64? {
    let string = String(decoding: text, as: UTF8.self)
    let parts = string.split(whereSeparator: { $0 == "-" || $0 == " " || $0 == ":" })
    guard parts.count == 7, parts[6] == "GMT", let year = Int64(parts[0]), let month = Int64(parts[1]),
          let day = Int64(parts[2]), let hour = Int64(parts[3]), let minute = Int64(parts[4]),
          let second = Int64(parts[5]), (1...12).contains(month), (1...31).contains(day) else { return nil }
    return daysFromCivil(year: year, month: month, day: day) * 86400 + hour * 3600 + minute * 60 + second
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146097 + dayOfEra - 719468
}

/// Hex (either case, even length) to bytes.
func decodeHex(_ text: [UInt8]) -> [UInt8]? {
    guard text.count % 2 == 0 else { return nil }
    func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(text.count / 2)
    var index = 0
    while index < text.count {
        guard let high = nibble(text[index]), let low = nibble(text[index + 1]) else { return nil }
        out.append(high << 4 | low)
        index += 2
    }
    return out
}

// MARK: - A small JSON parser (RFC 8259), for manifests

enum JSONValue {
    case object([(String, JSONValue)])
    case array([JSONValue])
    /// The string's UTF-8 bytes, escapes decoded.
    case string([UInt8])
    /// The number as written.
    case number(String)
    case bool(Bool)
    case null

    var integer: Int64? {
        guard case .number(let text) = self else { return nil }
        return Int64(text)
    }
}

struct JSONError: Error {
    let reason: String
}

struct JSONParser {
    let bytes: [UInt8]
    var index = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        let value = try parseValue()
        skipSpace()
        guard index == bytes.count else { throw JSONError(reason: "unexpected data after the top-level object") }
        return value
    }

    private mutating func skipSpace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
            index += 1
        }
    }

    private mutating func expect(_ byte: UInt8) throws(JSONError) {
        skipSpace()
        guard index < bytes.count, bytes[index] == byte else {
            throw JSONError(reason: "expected \"\(Character(Unicode.Scalar(byte)))\" at byte \(index)")
        }
        index += 1
    }

    private mutating func parseValue() throws(JSONError) -> JSONValue {
        skipSpace()
        guard index < bytes.count else { throw JSONError(reason: "the manifest ends early") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            depth += 1
            guard depth < 64 else { throw JSONError(reason: "nested too deeply") }
            defer { depth -= 1 }
            index += 1
            var fields: [(String, JSONValue)] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(fields)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw JSONError(reason: "expected a field name at byte \(index)")
                }
                let key = String(decoding: try parseString(), as: UTF8.self)
                guard !fields.contains(where: { $0.0 == key }) else { throw JSONError(reason: "duplicate field \"\(key)\"") }
                try expect(UInt8(ascii: ":"))
                fields.append((key, try parseValue()))
                skipSpace()
                guard index < bytes.count else { throw JSONError(reason: "the manifest ends early") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(fields) }
                throw JSONError(reason: "expected \",\" or \"}\" at byte \(index)")
            }
        case UInt8(ascii: "["):
            depth += 1
            guard depth < 64 else { throw JSONError(reason: "nested too deeply") }
            defer { depth -= 1 }
            index += 1
            var items: [JSONValue] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                items.append(try parseValue())
                skipSpace()
                guard index < bytes.count else { throw JSONError(reason: "the manifest ends early") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                throw JSONError(reason: "expected \",\" or \"]\" at byte \(index)")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            let start = index
            while index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+")
                || bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")
                || (bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")) {
                index += 1
            }
            guard index > start else { throw JSONError(reason: "unexpected byte at \(index)") }
            return .number(String(decoding: bytes[start..<index], as: UTF8.self))
        }
    }

    private mutating func literal(_ word: String) throws(JSONError) {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, bytes[index..<index + expected.count].elementsEqual(expected) else {
            throw JSONError(reason: "unexpected token at byte \(index)")
        }
        index += expected.count
    }

    /// A string at `index` (on its opening quote); escapes decoded, \u escapes to UTF-8.
    private mutating func parseString() throws(JSONError) -> [UInt8] {
        index += 1
        var out: [UInt8] = []
        while true {
            guard index < bytes.count else { throw JSONError(reason: "unterminated string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw JSONError(reason: "unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try literal("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw JSONError(reason: "invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let value = Unicode.Scalar(scalar) else { throw JSONError(reason: "invalid \\u escape") }
                    out += Array(String(Character(value)).utf8)
                default:
                    throw JSONError(reason: "invalid escape at byte \(index - 1)")
                }
            case ..<0x20:
                throw JSONError(reason: "control character in a string at byte \(index - 1)")
            default:
                out.append(byte)
            }
        }
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count, let value = decodeHex(Array(bytes[index..<index + 4])) else {
            throw JSONError(reason: "invalid \\u escape")
        }
        index += 4
        return UInt32(value[0]) << 8 | UInt32(value[1])
    }
}
