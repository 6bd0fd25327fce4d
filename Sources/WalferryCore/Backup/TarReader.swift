// Reading tar streams as walferry-backup and pg_basebackup write them: POSIX ustar, with pax extended
// headers ('x') for long names and link targets.
//
// Like `tar -x` reading from a pipe (GNU tar, bsdtar), except that it is fed the bytes as they come
// (from the bzip2 decoder) and hands each entry's data on without a copy, that it reads only what the
// writers above produce (regular files, directories, symbolic links, pax 'x' and 'g' headers) and
// refuses anything else (hard links, devices, GNU long names), and that it refuses every path that
// could leave the directory it is extracted to (absolute, or with a ".." component), where tar only
// strips a leading "/". The end of the archive (two zero blocks) must be there, and only zeros may
// follow it: a truncated or padded-with-garbage tarball is damaged, not "probably fine".

/// One entry of a tar stream, with the pax header's values applied.
public struct TarEntry: Sendable {
    /// The member name, normalised: no leading "./", no trailing "/", never empty.
    public var path: [UInt8]
    public var type: TarEntryType
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var mtime: Int64
    public var linkTarget: [UInt8]

    public var displayPath: String { String(decoding: path, as: UTF8.self) }
}

/// What a tar stream's reader hands its entries to.
protocol TarEntryHandler: AnyObject {
    func tarEntryBegins(_ entry: TarEntry) throws(BackupProblem)
    /// The next bytes of the current regular file's data.
    func tarData(_ bytes: UnsafeRawBufferPointer) throws(BackupProblem)
    /// The current regular file's data is complete.
    func tarFileEnds() throws(BackupProblem)
}

/// A push parser for a tar stream: `feed` it bytes in order, then `finish`.
final class TarStreamReader {
    private enum State {
        case header
        case paxData(remaining: UInt64, global: Bool)
        case fileData(remaining: UInt64)
        case padding(remaining: Int)
        case afterFirstZeroBlock
        case ended
    }

    private let name: String
    private unowned let handler: any TarEntryHandler
    private var state = State.header
    private var block: [UInt8] = []
    private var paxBuffer: [UInt8] = []
    private var paxValues: [String: [UInt8]] = [:]
    /// Bytes consumed so far, for messages.
    private(set) var offset: UInt64 = 0

    /// `name` is the tarball's path for messages.
    init(name: String, handler: any TarEntryHandler) {
        self.name = name
        self.handler = handler
        block.reserveCapacity(512)
    }

    private func damaged(_ reason: String) -> BackupProblem {
        BackupProblem(.damaged, "invalid tar data in file \"\(name)\" at offset \(offset): \(reason)")
    }

    func feed(_ input: UnsafeRawBufferPointer) throws(BackupProblem) {
        var rest = input
        while !rest.isEmpty {
            switch state {
            case .fileData(let remaining):
                let take = Int(min(UInt64(rest.count), remaining))
                try handler.tarData(UnsafeRawBufferPointer(rebasing: rest[..<take]))
                rest = UnsafeRawBufferPointer(rebasing: rest[take...])
                offset += UInt64(take)
                if UInt64(take) == remaining {
                    try handler.tarFileEnds()
                    state = tarPadding(offset) == 0 ? .header : .padding(remaining: tarPadding(offset))
                } else {
                    state = .fileData(remaining: remaining - UInt64(take))
                }
            case .padding(let remaining):
                let take = min(rest.count, remaining)
                rest = UnsafeRawBufferPointer(rebasing: rest[take...])
                offset += UInt64(take)
                state = take == remaining ? .header : .padding(remaining: remaining - take)
            case .paxData(let remaining, let global):
                let take = Int(min(UInt64(rest.count), remaining))
                paxBuffer.append(contentsOf: rest[..<take])
                rest = UnsafeRawBufferPointer(rebasing: rest[take...])
                offset += UInt64(take)
                if UInt64(take) == remaining {
                    if !global { try parsePax() }
                    paxBuffer = []
                    state = tarPadding(offset) == 0 ? .header : .padding(remaining: tarPadding(offset))
                } else {
                    state = .paxData(remaining: remaining - UInt64(take), global: global)
                }
            case .header, .afterFirstZeroBlock, .ended:
                let take = min(rest.count, 512 - block.count)
                block.append(contentsOf: rest[..<take])
                rest = UnsafeRawBufferPointer(rebasing: rest[take...])
                if block.count == 512 {
                    offset += 512
                    let full = block
                    block.removeAll(keepingCapacity: true)
                    try headerBlock(full)
                }
            }
        }
    }

    /// The input ended: it must have ended after the end-of-archive blocks.
    func finish() throws(BackupProblem) {
        guard case .ended = state, block.allSatisfy({ $0 == 0 }) else {
            throw damaged("the tarball ends before its end-of-archive marker")
        }
    }

    private func headerBlock(_ header: [UInt8]) throws(BackupProblem) {
        let zero = header.allSatisfy { $0 == 0 }
        switch state {
        case .ended:
            guard zero else { throw damaged("data after the end-of-archive marker") }
            return
        case .afterFirstZeroBlock:
            guard zero else { throw damaged("a zero block in the middle of the archive") }
            state = .ended
            return
        default:
            if zero {
                guard paxValues.isEmpty else { throw damaged("a pax header without an entry") }
                state = .afterFirstZeroBlock
                return
            }
        }
        // The checksum: the sum of the header's bytes with the checksum field counted as spaces.
        guard let stored = octalField(header[148..<156]) else { throw damaged("invalid header checksum field") }
        var sum: UInt64 = 0
        for (index, byte) in header.enumerated() { sum += (148..<156).contains(index) ? 32 : UInt64(byte) }
        guard stored == sum else { throw damaged("header checksum mismatch") }
        guard header[257..<262].elementsEqual("ustar".utf8) else { throw damaged("not a ustar header") }

        guard let size = numericField(header[124..<136]) else { throw damaged("invalid size field") }
        let typeflag = header[156]
        if typeflag == UInt8(ascii: "x") || typeflag == UInt8(ascii: "g") {
            guard size <= 1 << 20 else { throw damaged("pax header too large") }
            state = size == 0 ? .header : .paxData(remaining: size, global: typeflag == UInt8(ascii: "g"))
            return
        }
        let type: TarEntryType
        switch typeflag {
        case UInt8(ascii: "0"), 0: type = .regular
        case UInt8(ascii: "5"): type = .directory
        case UInt8(ascii: "2"): type = .symbolicLink
        default: throw damaged("unsupported entry type '\(Character(Unicode.Scalar(typeflag)))'")
        }
        var path = cString(header[345..<500])
        if !path.isEmpty { path.append(UInt8(ascii: "/")) }
        path += cString(header[0..<100])
        var link = cString(header[157..<257])
        var entrySize = size
        var uid = numericField(header[108..<116]).map { UInt32(truncatingIfNeeded: $0) } ?? 0
        var gid = numericField(header[116..<124]).map { UInt32(truncatingIfNeeded: $0) } ?? 0
        if let value = paxValues["path"] { path = value }
        if let value = paxValues["linkpath"] { link = value }
        if let value = paxValues["size"] {
            guard let parsed = UInt64(String(decoding: value, as: UTF8.self)) else { throw damaged("invalid pax size") }
            entrySize = parsed
        }
        if let value = paxValues["uid"], let parsed = UInt32(String(decoding: value, as: UTF8.self)) { uid = parsed }
        if let value = paxValues["gid"], let parsed = UInt32(String(decoding: value, as: UTF8.self)) { gid = parsed }
        paxValues = [:]
        guard let normalised = normalisedMemberPath(path), !normalised.isEmpty || type == .directory else {
            throw damaged("unsafe member name \"\(String(decoding: path, as: UTF8.self))\"")
        }
        if normalised.isEmpty {
            state = .header  // "./", the root itself, which `tar -C dir -c .` lists first
            return
        }
        let entry = TarEntry(path: normalised, type: type,
                             mode: UInt32(truncatingIfNeeded: numericField(header[100..<108]) ?? 0o600) & 0o7777,
                             uid: uid, gid: gid, size: type == .regular ? entrySize : 0,
                             mtime: Int64(truncatingIfNeeded: numericField(header[136..<148]) ?? 0), linkTarget: link)
        try handler.tarEntryBegins(entry)
        if type == .regular {
            if entrySize == 0 {
                try handler.tarFileEnds()
                state = .header
            } else {
                state = .fileData(remaining: entrySize)
            }
        } else {
            // Directories and links carry no data (a writer that gives them some is not one of ours).
            guard entrySize == 0 else { throw damaged("a directory or link entry with data") }
            state = .header
        }
    }

    /// "<length> <key>=<value>\n" records.
    private func parsePax() throws(BackupProblem) {
        var index = 0
        while index < paxBuffer.count {
            guard let space = paxBuffer[index...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: paxBuffer[index..<space], as: UTF8.self)), length > 0,
                  index + length <= paxBuffer.count, paxBuffer[index + length - 1] == UInt8(ascii: "\n"),
                  let equals = paxBuffer[(space + 1)..<(index + length)].firstIndex(of: UInt8(ascii: "=")) else {
                throw damaged("invalid pax header")
            }
            let key = String(decoding: paxBuffer[(space + 1)..<equals], as: UTF8.self)
            paxValues[key] = Array(paxBuffer[(equals + 1)..<(index + length - 1)])
            index += length
        }
    }
}

/// The bytes of a NUL-terminated (or full-width) header field.
private func cString(_ field: ArraySlice<UInt8>) -> [UInt8] {
    Array(field.prefix { $0 != 0 })
}

/// An octal field (leading spaces, digits, then NUL or space).
private func octalField(_ field: ArraySlice<UInt8>) -> UInt64? {
    var value: UInt64 = 0
    var digits = 0
    var started = false
    for byte in field {
        if byte == UInt8(ascii: " ") && !started { continue }
        if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") {
            started = true
            digits += 1
            guard digits <= 22 else { return nil }
            value = value << 3 | UInt64(byte - UInt8(ascii: "0"))
        } else if byte == 0 || byte == UInt8(ascii: " ") {
            break
        } else {
            return nil
        }
    }
    return value
}

/// A numeric field: octal, or GNU's base-256 form (high bit of the first byte set).
private func numericField(_ field: ArraySlice<UInt8>) -> UInt64? {
    guard let first = field.first else { return nil }
    if first & 0x80 == 0 { return octalField(field) }
    guard first == 0x80 else { return nil }  // negative or too large
    var value: UInt64 = 0
    for byte in field.dropFirst() {
        guard value >> 56 == 0 else { return nil }
        value = value << 8 | UInt64(byte)
    }
    return value
}

/// The member name without "./" components and trailing slashes ([] for the root itself, "./"); nil
/// when it is empty, absolute or has a ".." component.
func normalisedMemberPath(_ path: [UInt8]) -> [UInt8]? {
    guard !path.isEmpty, path.first != UInt8(ascii: "/") else { return nil }
    var components: [ArraySlice<UInt8>] = []
    for component in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
        if component.elementsEqual(".".utf8) { continue }
        if component.elementsEqual("..".utf8) { return nil }
        components.append(component)
    }
    return Array(components.joined(separator: [UInt8(ascii: "/")]))
}
