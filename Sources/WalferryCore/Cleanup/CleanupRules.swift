// Which archive entries pg_archivecleanup removes, byte for byte.
//
// Equivalent to pg_archivecleanup's TrimExtension, SetWALFileNameForCleanup and the test in
// CleanupPriorWALFiles (PostgreSQL 15-17), and deliberately as loose as they are, because a drop-in
// must remove exactly the same files:
// - the extension given with -x is stripped once, and only from a name longer than it;
// - the timeline (the first 8 characters) is ignored, on both sides of the comparison;
// - the comparison is strcmp from the 9th character on, so "X.partial" and "X.<offset>.backup" of the
//   cut-off segment X itself compare greater and are kept;
// - a ".backup" cut-off is accepted when sscanf("%08X%08X%08X.%08X.backup") converts four values, which
//   lets "X.backup" and "X.1.backup" through. We call the C library's own sscanf so that every odd
//   input gets the same answer as pg_archivecleanup's.
// The strict WAL name type (WAL/WALFileName.swift) is not used here for that reason.

import Glibc

/// OLDESTKEPTWALFILE was not a name pg_archivecleanup accepts.
public struct InvalidCutoffError: Error, Sendable {
    /// A sentence naming the likely mistake, when one can be guessed.
    public let hint: String?
}

/// The cut-off and the options that decide which entries of an archive are removed.
public struct CleanupRules: Sendable {
    /// The normalised cut-off: a 24-character segment name. Entries that sort before it (ignoring the
    /// timeline) are removed.
    public let cutoff: [UInt8]
    /// The -x extension, stripped once from entry names before they are examined.
    public let stripExtension: [UInt8]?
    /// -b: also remove backup history files older than the cut-off.
    public let cleanBackupHistory: Bool

    public init(oldestKeptWALFile argument: String, stripExtension: String?, cleanBackupHistory: Bool) throws(InvalidCutoffError) {
        let strip = stripExtension.map { Array($0.utf8) }
        self.stripExtension = strip
        self.cleanBackupHistory = cleanBackupHistory

        let original = Array(argument.utf8)
        let name = Array(original[..<CleanupRules.stemLength(original, strip)])
        if CleanupRules.isSegmentName(name[...]) {
            cutoff = name
        } else if CleanupRules.isPartialName(name[...]) {
            cutoff = Array(name.prefix(24))
        } else if CleanupRules.isLooseBackupHistoryName(name[...]), CleanupRules.scansAsBackupHistory(name) {
            // XLogFileNameById re-renders the three fields as %08X, which reproduces the first 24
            // characters exactly: the predicate has already required them to be upper-case hex.
            cutoff = Array(name.prefix(24))
        } else {
            throw InvalidCutoffError(hint: CleanupRules.hint(argument: original, stripped: name, strip: strip))
        }
    }

    /// True when the entry named `name` (raw bytes from readdir) is to be removed.
    public func removes(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        let length = CleanupRules.stemLength(name, stripExtension)
        let stem = name[..<length]
        guard CleanupRules.isSegmentName(stem) || CleanupRules.isPartialName(stem)
                || (cleanBackupHistory && CleanupRules.isLooseBackupHistoryName(stem))
        else { return false }
        // strcmp(walfile + 8, cutoff + 8) < 0; the cut-off side is 16 bytes long and contains no NUL.
        var index = 8
        while index < 24 {
            if index == length { return true }  // a proper prefix sorts first
            let left = stem[index], right = cutoff[index]
            if left != right { return left < right }
            index += 1
        }
        return false  // equal to the cut-off, or longer with the cut-off as its prefix
    }

    // MARK: - pg_archivecleanup's predicates, on raw bytes

    /// The length of `name` once the extension is stripped (TrimExtension).
    static func stemLength<C: Collection<UInt8>>(_ name: C, _ ext: [UInt8]?) -> Int where C.Index == Int {
        guard let ext, name.count > ext.count, name.hasSuffix(ext) else { return name.count }
        return name.count - ext.count
    }

    static func isUpperHex(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.allSatisfy { upperHexValue($0) != nil }
    }

    /// IsXLogFileName: exactly 24 upper-case hex characters.
    static func isSegmentName<C: Collection<UInt8>>(_ name: C) -> Bool {
        name.count == 24 && isUpperHex(name)
    }

    /// IsPartialXLogFileName: 24 upper-case hex characters, then exactly ".partial".
    static func isPartialName<C: Collection<UInt8>>(_ name: C) -> Bool {
        name.count == 32 && isUpperHex(name.prefix(24)) && name.dropFirst(24).elementsEqual(".partial".utf8)
    }

    /// IsBackupHistoryFileName: longer than 24, exactly 24 leading upper-case hex characters (the 25th
    /// is not one), and ending in ".backup". The offset itself is not checked.
    static func isLooseBackupHistoryName<C: Collection<UInt8>>(_ name: C) -> Bool {
        guard name.count > 24, isUpperHex(name.prefix(24)), let next = name.dropFirst(24).first else { return false }
        return upperHexValue(next) == nil && name.hasSuffix(".backup".utf8)
    }

    /// sscanf(name, "%08X%08X%08X.%08X.backup", ...) == 4, with the C library's sscanf.
    static func scansAsBackupHistory(_ name: [UInt8]) -> Bool {
        var fields: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        let converted: Int32 = withUnsafeMutablePointer(to: &fields.0) { tli in
            withUnsafeMutablePointer(to: &fields.1) { log in
                withUnsafeMutablePointer(to: &fields.2) { seg in
                    withUnsafeMutablePointer(to: &fields.3) { offset in
                        withVaList([tli, log, seg, offset]) { arguments in
                            (name + [0]).withUnsafeBufferPointer { text in
                                text.withMemoryRebound(to: CChar.self) { cText in
                                    vsscanf(cText.baseAddress, "%08X%08X%08X.%08X.backup", arguments)
                                }
                            }
                        }
                    }
                }
            }
        }
        return converted == 4
    }

    /// The likely mistake behind an invalid cut-off, when one can be named.
    static func hint(argument: [UInt8], stripped: [UInt8], strip: [UInt8]?) -> String? {
        let text = String(decoding: argument, as: UTF8.self)
        if argument.contains(UInt8(ascii: "/")) {
            return "OLDESTKEPTWALFILE is a file name, not a path; archive_cleanup_command passes it as %r."
        }
        if let strip, !strip.isEmpty, strip.first != UInt8(ascii: "."), argument.hasSuffix([UInt8(ascii: ".")] + strip) {
            return "The extension is matched with its dot: use -x .\(String(decoding: strip, as: UTF8.self))."
        }
        let hexDigits = stripped.prefix(24)
        if hexDigits.count == 24, hexDigits.allSatisfy({ UInt8(ascii: "a")...UInt8(ascii: "f") ~= $0 || upperHexValue($0) != nil }),
           !isUpperHex(hexDigits) {
            return "WAL file names are written in upper-case hexadecimal."
        }
        if text.hasSuffix(".history") {
            return "A timeline history file marks no position in WAL; give a segment, .partial or .backup file name."
        }
        if strip == nil, let dot = text.lastIndex(of: "."),
           WALFileName.Compression(rawValue: String(text[text.index(after: dot)...])) != nil,
           WALFileName(text)?.compression != nil {
            return "To clean up compressed files, give their extension: -x \(text[dot...])."
        }
        return nil
    }
}
