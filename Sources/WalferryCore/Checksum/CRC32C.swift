// CRC-32C (Castagnoli): the checksum PostgreSQL uses for WAL and for backup manifests, and the one
// walferry uses to verify what it writes. Like PostgreSQL's pg_crc32c (INIT, COMP, FIN); the work is
// done by the small C target CWalferryCRC32C, which uses the processor's crc32 instruction.

import CWalferryCRC32C

/// A running CRC-32C.
public struct CRC32C: Sendable, Hashable {
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// Adds `bytes` to the checksum.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        state = walferry_crc32c_update(state, base, bytes.count)
    }

    /// Adds `bytes` to the checksum.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { update($0) }
        }
    }

    /// The checksum of everything added so far.
    public var value: UInt32 { ~state }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }
}
