// Tar headers: POSIX ustar, with pax extended headers for what ustar cannot hold.
//
// Like PostgreSQL's tarCreateHeader (ustar, the source's mode and mtime, base-256 sizes above 8 GB),
// except that a name longer than ustar allows is not an error: it is split into ustar's prefix and
// name fields when it can be, and otherwise carried by a pax 'x' header (`path=`, `linkpath=`), which
// GNU tar, bsdtar and Python's tarfile all read. Numbers that do not fit their octal field (sizes of
// 8 GiB and more, large uids) use the base-256 form GNU tar and bsdtar read.

/// What a tar entry is.
public enum TarEntryType: Sendable {
    case regular, directory, symbolicLink
}

/// One tar entry's metadata.
public struct TarHeader: Sendable {
    /// The member name, without a trailing slash (added for directories).
    public var path: [UInt8]
    public var type: TarEntryType
    /// Permission bits (0o7777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var userName: [UInt8] = []
    public var groupName: [UInt8] = []
    /// Data bytes that follow the header (0 for directories and links).
    public var size: UInt64
    /// Seconds since the epoch.
    public var mtime: Int64
    public var linkTarget: [UInt8] = []

    public init(path: [UInt8], type: TarEntryType, mode: UInt32, uid: UInt32, gid: UInt32, size: UInt64, mtime: Int64,
                linkTarget: [UInt8] = []) {
        self.path = path
        self.type = type
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.linkTarget = linkTarget
    }

    /// The 512-byte blocks that announce this entry: a pax header and its data when needed, then the
    /// ustar header.
    public func encoded() -> [UInt8] {
        var name = path
        if type == .directory && name.last != UInt8(ascii: "/") { name.append(UInt8(ascii: "/")) }
        var pax: [([UInt8], [UInt8])] = []
        var nameField = name
        var prefixField: [UInt8] = []
        if name.count > 100 {
            if let split = TarHeader.ustarSplit(name) {
                (prefixField, nameField) = split
            } else {
                pax.append((Array("path".utf8), name))
                nameField = TarHeader.truncatedName(name)
            }
        }
        var linkField = linkTarget
        if linkTarget.count > 100 {
            pax.append((Array("linkpath".utf8), linkTarget))
            linkField = Array(linkTarget.prefix(100))
        }
        var blocks: [UInt8] = []
        if !pax.isEmpty {
            let data = pax.flatMap { TarHeader.paxRecord(key: $0.0, value: $0.1) }
            let paxName = Array("PaxHeader/".utf8) + Array(TarHeader.truncatedName(FilePath(bytes: name).lastComponent).prefix(90))
            blocks += TarHeader.ustarBlock(name: paxName, prefix: [], mode: 0o644, uid: uid, gid: gid,
                                           size: UInt64(data.count), mtime: mtime, typeflag: UInt8(ascii: "x"),
                                           link: [], userName: userName, groupName: groupName)
            blocks += data
            blocks += [UInt8](repeating: 0, count: tarPadding(UInt64(data.count)))
        }
        let typeflag: UInt8 = switch type {
        case .regular: UInt8(ascii: "0")
        case .directory: UInt8(ascii: "5")
        case .symbolicLink: UInt8(ascii: "2")
        }
        blocks += TarHeader.ustarBlock(name: nameField, prefix: prefixField, mode: mode, uid: uid, gid: gid,
                                       size: type == .regular ? size : 0, mtime: mtime, typeflag: typeflag,
                                       link: linkField, userName: userName, groupName: groupName)
        return blocks
    }

    /// Splits a long name at a slash into ustar's prefix (at most 155 bytes) and name (at most 100).
    static func ustarSplit(_ name: [UInt8]) -> (prefix: [UInt8], name: [UInt8])? {
        guard name.count <= 256 else { return nil }
        // The rightmost slash that leaves a short enough prefix, with a non-empty name after it.
        var index = min(name.count - 1, 155)
        while index > 0 {
            if name[index] == UInt8(ascii: "/") {
                let rest = name.count - index - 1
                if rest == 0 || rest > 100 { return nil }
                return (Array(name[..<index]), Array(name[(index + 1)...]))
            }
            index -= 1
        }
        return nil
    }

    /// The first 100 bytes of a name, for the ustar field of an entry whose real name is in pax.
    static func truncatedName(_ name: [UInt8]) -> [UInt8] { Array(name.prefix(100)) }

    /// One pax record: "<length> <key>=<value>\n", where the length counts itself.
    static func paxRecord(key: [UInt8], value: [UInt8]) -> [UInt8] {
        let body = key.count + value.count + 3  // space, '=', newline
        var length = body + String(body).utf8.count
        if String(length).utf8.count != String(body).utf8.count { length = body + String(length).utf8.count }
        return Array(String(length).utf8) + [UInt8(ascii: " ")] + key + [UInt8(ascii: "=")] + value + [UInt8(ascii: "\n")]
    }

    static func ustarBlock(name: [UInt8], prefix: [UInt8], mode: UInt32, uid: UInt32, gid: UInt32, size: UInt64,
                           mtime: Int64, typeflag: UInt8, link: [UInt8], userName: [UInt8], groupName: [UInt8]) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int, width: Int) {
            for (index, byte) in bytes.prefix(width).enumerated() { block[offset + index] = byte }
        }
        put(name, at: 0, width: 100)
        put(numericField(UInt64(mode & 0o7777), width: 8), at: 100, width: 8)
        put(numericField(UInt64(uid), width: 8), at: 108, width: 8)
        put(numericField(UInt64(gid), width: 8), at: 116, width: 8)
        put(numericField(size, width: 12), at: 124, width: 12)
        put(numericField(UInt64(max(0, mtime)), width: 12), at: 136, width: 12)
        block[156] = typeflag
        put(link, at: 157, width: 100)
        put(Array("ustar\u{0}00".utf8), at: 257, width: 8)
        put(userName, at: 265, width: 31)
        put(groupName, at: 297, width: 31)
        put(numericField(0, width: 8), at: 329, width: 8)
        put(numericField(0, width: 8), at: 337, width: 8)
        put(prefix, at: 345, width: 155)
        // The checksum is computed with its own field as eight spaces, then written as six octal
        // digits, a NUL and a space.
        for index in 148..<156 { block[index] = UInt8(ascii: " ") }
        let sum = block.reduce(0) { $0 + Int($1) }
        put(octal(UInt64(sum), digits: 6) + [0, UInt8(ascii: " ")], at: 148, width: 8)
        return block
    }

    /// A numeric field: octal digits and a NUL when the value fits, else GNU's base-256 form (the
    /// high bit of the first byte set, the value big-endian in the rest).
    static func numericField(_ value: UInt64, width: Int) -> [UInt8] {
        let digits = width - 1
        if value < (UInt64(1) << UInt64(3 * digits)) { return octal(value, digits: digits) + [0] }
        var field = [UInt8](repeating: 0, count: width)
        var rest = value
        for index in stride(from: width - 1, to: 0, by: -1) {
            field[index] = UInt8(truncatingIfNeeded: rest)
            rest >>= 8
        }
        field[0] = 0x80
        return field
    }

    static func octal(_ value: UInt64, digits: Int) -> [UInt8] {
        var field = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        var rest = value
        for index in stride(from: digits - 1, through: 0, by: -1) {
            field[index] = UInt8(ascii: "0") + UInt8(rest & 7)
            rest >>= 3
        }
        return field
    }
}

/// The zero bytes that follow `size` data bytes to fill their last 512-byte block.
public func tarPadding(_ size: UInt64) -> Int { Int((512 - size % 512) % 512) }

/// The end of an archive: two zero blocks.
public let tarEndOfArchiveSize = 1024
