// Tablespaces in walferry-recover: where each one goes, and the pg_tblspc links and tablespace_map
// that say so.
//
// Like pg_basebackup -Fp -T OLDDIR=NEWDIR (both absolute, "\=" for an "=" in a path, OLDDIR compared
// after canonicalising, a tablespace directory created if absent and refused unless empty) and the
// server's read_tablespace_map (one "oid path" line per tablespace, "\\" and "\<newline>" escaped in
// the path from PostgreSQL 14 on), except that a mapping that matches no tablespace of the backup is
// an error rather than silently unused: a mistyped OLDDIR would otherwise restore into the old place.

/// One -T OLDDIR=NEWDIR.
public struct TablespaceMapping: Sendable, Equatable {
    public let old: String
    public let new: String

    /// Parses OLDDIR=NEWDIR; nil with the reason when it is malformed.
    public static func parse(_ text: String) -> Result<TablespaceMapping, TablespaceMappingError> {
        var old = "", new = ""
        var seenEquals = false
        var escaped = false
        for character in text {
            if escaped {
                if seenEquals { new.append(character) } else { old.append(character) }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "=" {
                if seenEquals { return .failure(TablespaceMappingError("multiple \"=\" signs in tablespace mapping")) }
                seenEquals = true
            } else if seenEquals {
                new.append(character)
            } else {
                old.append(character)
            }
        }
        guard seenEquals, !old.isEmpty, !new.isEmpty else {
            return .failure(TablespaceMappingError("invalid tablespace mapping format \"\(text)\", must be \"OLDDIR=NEWDIR\""))
        }
        guard old.hasPrefix("/") else { return .failure(TablespaceMappingError("old directory is not an absolute path in tablespace mapping: \(old)")) }
        guard new.hasPrefix("/") else { return .failure(TablespaceMappingError("new directory is not an absolute path in tablespace mapping: \(new)")) }
        return .success(TablespaceMapping(old: canonical(old), new: canonical(new)))
    }

    /// Without repeated or trailing slashes (canonicalize_path's job for these).
    static func canonical(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return "/" + parts.joined(separator: "/")
    }
}

public struct TablespaceMappingError: Error, Sendable, Equatable {
    public let message: String
    init(_ message: String) { self.message = message }
}

/// tablespace_map's lines: OID and location.
func parseTablespaceMap(_ bytes: [UInt8]) -> [(oid: String, location: [UInt8])]? {
    var result: [(String, [UInt8])] = []
    var line: [UInt8] = []
    var escaped = false
    var lines: [[UInt8]] = []
    for byte in bytes {
        if escaped {
            line.append(byte)
            escaped = false
        } else if byte == UInt8(ascii: "\\") {
            escaped = true
        } else if byte == UInt8(ascii: "\n") {
            lines.append(line)
            line = []
        } else {
            line.append(byte)
        }
    }
    if !line.isEmpty { lines.append(line) }
    for entry in lines where !entry.isEmpty {
        guard let space = entry.firstIndex(of: UInt8(ascii: " ")), space > 0,
              entry[..<space].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        result.append((String(decoding: entry[..<space], as: UTF8.self), Array(entry[(space + 1)...])))
    }
    return result
}

/// tablespace_map's text for `entries`, with the server's escapes.
func encodeTablespaceMap(_ entries: [(oid: String, location: [UInt8])]) -> [UInt8] {
    var out: [UInt8] = []
    for entry in entries {
        out += Array(entry.oid.utf8) + [UInt8(ascii: " ")]
        for byte in entry.location {
            if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { out.append(UInt8(ascii: "\\")) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\n"))
    }
    return out
}
