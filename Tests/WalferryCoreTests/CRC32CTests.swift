// CRC-32C against known answers (RFC 3720 B.4 test vectors and the usual "123456789"), and the
// hardware and incremental paths against each other.

import Testing
@testable import WalferryCore

struct CRC32CTests {
    @Test func knownAnswers() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func incrementalEqualsWholeAtEverySplit() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 7, 8, 9, 63, 500, 999, 1000] {
            var crc = CRC32C()
            crc.update(data[..<split])
            crc.update(data[split...])
            #expect(crc.value == whole, "split at \(split)")
        }
    }
}

import CWalferryCRC32C

/// The hardware path (three interleaved streams from 768 bytes on) against the byte table, at the
/// lengths where it changes gear and at random lengths and offsets.
struct CRC32CInterleavingTests {
    @Test func everyPathAgreesWithTheTable() {
        var generator = SystemRandomNumberGenerator()
        let data = (0..<(3 * 8192 * 3 + 4096)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var lengths = [0, 1, 7, 8, 767, 768, 769, 3 * 256 + 8, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 6 * 8192 + 3 * 256 + 17, data.count]
        for _ in 0..<200 { lengths.append(Int.random(in: 0...data.count, using: &generator)) }
        data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            for length in lengths {
                let offset = Int.random(in: 0...min(7, data.count - length), using: &generator)
                let fast = walferry_crc32c_update(0xFFFF_FFFF, base + offset, length)
                let reference = walferry_crc32c_update_portable(0xFFFF_FFFF, base + offset, length)
                #expect(fast == reference, "length \(length) at offset \(offset)")
            }
        }
    }
}
