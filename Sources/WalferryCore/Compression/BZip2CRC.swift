// bzip2's checksums: the CRC-32 of each block's uncompressed bytes (polynomial 0x04C11DB7, most
// significant bit first, register started at all ones and inverted at the end, as POSIX cksum but
// without the length), and the stream's combined CRC over the block CRCs.
//
// Like libbz2's BZ_UPDATE_CRC, except eight bytes a step (slicing-by-8: eight tables of 256 entries,
// 8 KB) instead of one, which makes it several times faster; it runs over every byte the encoder reads.
// bzip2's CRC is not CRC-32C, so the processor's crc32 instruction (CWalferryCRC32C) cannot serve.

/// The checksums of the bzip2 format.
enum BZip2CRC {
    /// `tables[k * 256 + b]`: the register after byte `b` followed by `k` zero bytes, from a zero
    /// register. Table 0 is the usual byte-at-a-time table.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var register = UInt32(byte) << 24
            for _ in 0..<8 { register = register & 0x8000_0000 != 0 ? (register << 1) ^ 0x04C1_1DB7 : register << 1 }
            tables[byte] = register
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(k - 1) * 256 + byte]
                tables[k * 256 + byte] = (previous << 8) ^ tables[Int(previous >> 24)]
            }
        }
        return tables
    }()

    /// The CRC of `count` bytes at `bytes`, as the block trailer of the format stores it.
    static func checksum(_ bytes: UnsafePointer<UInt8>, count: Int) -> UInt32 {
        tables.withUnsafeBufferPointer { buffer in
            // The array holds 2048 entries: every index below is at most 7 * 256 + 255.
            guard let table = buffer.baseAddress else { return 0 }
            var register: UInt32 = 0xFFFF_FFFF
            var index = 0
            while index + 8 <= count {
                let high = register ^ (UInt32(bytes[index]) << 24 | UInt32(bytes[index + 1]) << 16
                    | UInt32(bytes[index + 2]) << 8 | UInt32(bytes[index + 3]))
                register = table[7 * 256 + Int(high >> 24)] ^ table[6 * 256 + Int((high >> 16) & 0xFF)]
                    ^ table[5 * 256 + Int((high >> 8) & 0xFF)] ^ table[4 * 256 + Int(high & 0xFF)]
                    ^ table[3 * 256 + Int(bytes[index + 4])] ^ table[2 * 256 + Int(bytes[index + 5])]
                    ^ table[1 * 256 + Int(bytes[index + 6])] ^ table[Int(bytes[index + 7])]
                index += 8
            }
            while index < count {
                register = (register << 8) ^ table[Int((register >> 24) ^ UInt32(bytes[index]))]
                index += 1
            }
            return ~register
        }
    }

    /// The stream CRC after one more block: rotated left by one bit, then the block's CRC added.
    static func combine(_ combined: UInt32, _ block: UInt32) -> UInt32 {
        ((combined << 1) | (combined >> 31)) ^ block
    }
}
