// The bit stream of the bzip2 encoder: bits most significant first, as the format packs them.
//
// Like libbz2's bsW, except that the bits gather in a 64-bit register and leave 32 at a time, and that
// the buffer grows only when the encoder asks for room (`reserve`, once per block), not at every write.

/// Bits, most significant first, into a growing byte buffer.
struct BitWriter {
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var count = 0
    /// The last `pending` bits of `accumulator` are not in the buffer yet (fewer than 32).
    private var accumulator: UInt64 = 0
    private var pending = 0

    init(capacity: Int) {
        self.capacity = capacity
        buffer = .allocate(capacity: capacity)
    }

    func deallocate() { buffer.deallocate() }

    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: buffer, count: count)) }

    mutating func reset() {
        count = 0
        accumulator = 0
        pending = 0
    }

    /// Makes room for `bytes` more bytes; `put` itself does not check.
    mutating func reserve(_ bytes: Int) {
        guard count + bytes + 8 > capacity else { return }
        let grown = max(capacity * 2, count + bytes + 8)
        let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        larger.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = larger
        capacity = grown
    }

    /// The low `bits` bits of `value` (at most 24 bits; the others must be zero).
    @inline(__always)
    mutating func put(_ value: UInt32, bits: Int) {
        accumulator = (accumulator << UInt64(bits)) | UInt64(value)
        pending += bits
        if pending >= 32 {
            pending -= 32
            let word = UInt32(truncatingIfNeeded: accumulator >> UInt64(pending))
            (UnsafeMutableRawPointer(buffer + count)).storeBytes(of: word.bigEndian, as: UInt32.self)
            count += 4
        }
    }

    /// Writes the last bits, padded with zeros to a whole byte.
    mutating func flush() {
        while pending > 0 {
            let take = min(8, pending)
            pending -= take
            buffer[count] = UInt8(truncatingIfNeeded: (accumulator >> UInt64(pending)) << UInt64(8 - take))
            count += 1
        }
    }
}
