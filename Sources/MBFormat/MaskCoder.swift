import MBCore

/// Entropy coding of a binarization mask (one bit width per entry) with a static rANS coder
/// whose frequencies are the tensor's own realized distribution, so a mask costs close to
/// H(P) bits per entry, or per block for a structured mask (`code(mask:levels:shape:)`).
/// Symbols are `bitwidth - 1` (0..<alphabet, alphabet <= 8).
///
/// Stream: a 32-bit big-endian initial state, then renormalization bytes in decoding order.
/// Decoding ends with the state back at `lowerBound` and every byte consumed; anything else
/// means the stream is damaged. (The encoder runs backwards and reverses its output.)
public enum MaskCoder {
    /// Frequencies sum to 2^scaleBits.
    public static let scaleBits = 15
    public static let total = 1 << scaleBits
    static let lowerBound: UInt32 = 1 << 23

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Quantized frequencies for symbol `counts`: they sum to `total`, and every symbol that
    /// occurs gets at least 1. Deterministic (the writer stores the result).
    public static func frequencies(counts: [Int]) -> [UInt16] {
        let n = counts.reduce(0, +)
        // An empty mask still needs a valid table: give everything to the first symbol.
        guard n > 0 else { return counts.indices.map { $0 == 0 ? UInt16(total) : 0 } }
        var freqs = counts.map { c -> Int in c == 0 ? 0 : max(1, Int((Double(c) * Double(total) / Double(n)).rounded())) }
        // Fix the sum by adjusting the largest entries (the least relative damage).
        var diff = total - freqs.reduce(0, +)
        while diff != 0 {
            let order = freqs.indices.sorted { freqs[$0] > freqs[$1] }
            for i in order where diff != 0 {
                if diff > 0 { freqs[i] += 1; diff -= 1 } else if freqs[i] > 1 { freqs[i] -= 1; diff += 1 }
            }
        }
        return freqs.map { UInt16($0) }
    }

    /// Estimated stream size in bits for these counts and frequencies (for size predictions).
    public static func estimatedBits(counts: [Int], frequencies: [UInt16]) -> Double {
        var bits = 0.0
        for (c, f) in zip(counts, frequencies) where c > 0 {
            bits += Double(c) * (Double(scaleBits) - log2(Double(f)))
        }
        return bits + 32
    }

    /// A coded (non-uniform) mask as the writer stores it.
    public struct Coded: Sendable {
        public var stream: [UInt8]
        public var frequencies: [UInt16]
        /// Mask coding 2: one symbol per block of these; nil: coding 1, one per entry.
        public var blocks: MaskBlocks?
        /// Bytes in the file: the stream, the frequency table and the block sizes.
        public var storedBytes: Int { stream.count + 2 * frequencies.count + 4 * (blocks?.sizes.count ?? 0) }
    }

    /// Codes `mask` (widths 1...levels, flat order, `shape`'s entries) the way the writer does:
    /// one symbol per entry (coding 1), or, when the mask is constant on blocks of entries (a
    /// structured mask) and that is smaller counting the block sizes, one per block of the
    /// coarsest such blocking (coding 2). A mask whose coarsest blocks are single entries always
    /// gets coding 1 (the bytes every earlier writer produced), and so does every mask with
    /// `blocks: false`.
    public static func code(mask: [UInt8], levels: Int, shape: [Int], blocks allowBlocks: Bool = true) throws(Failure) -> Coded {
        func coded(_ widths: [UInt8]) throws(Failure) -> (stream: [UInt8], frequencies: [UInt16]) {
            var counts = [Int](repeating: 0, count: levels)
            for m in widths { counts[Int(m) - 1] += 1 }
            let frequencies = Self.frequencies(counts: counts)
            let symbols = widths.map { $0 - 1 }
            return (try symbols.withUnsafeBufferPointer { (s) throws(Failure) in try encode(s, frequencies: frequencies) }, frequencies)
        }
        guard mask.allSatisfy({ $0 >= 1 && Int($0) <= levels }) else { throw Failure(message: "mask widths outside 1...\(levels)") }
        let perEntry = try coded(mask)
        guard allowBlocks else { return Coded(stream: perEntry.stream, frequencies: perEntry.frequencies, blocks: nil) }
        let blocks = mask.withUnsafeBufferPointer { MaskBlocks.coarsest(mask: $0, shape: shape) }
        if !blocks.isElementwise {
            let perBlock = try coded(blocks.reduce(mask))
            if perBlock.stream.count + 4 * shape.count < perEntry.stream.count {
                return Coded(stream: perBlock.stream, frequencies: perBlock.frequencies, blocks: blocks)
            }
        }
        return Coded(stream: perEntry.stream, frequencies: perEntry.frequencies, blocks: nil)
    }

    /// Encodes `symbols` (each < frequencies.count, each with a non-zero frequency).
    public static func encode(_ symbols: UnsafeBufferPointer<UInt8>, frequencies: [UInt16]) throws(Failure) -> [UInt8] {
        guard frequencies.reduce(0, { $0 + Int($1) }) == total else {
            throw Failure(message: "mask frequencies sum to \(frequencies.reduce(0) { $0 + Int($1) }), expected \(total)")
        }
        var cumulative = [UInt32](repeating: 0, count: frequencies.count)
        for i in 1..<max(frequencies.count, 1) { cumulative[i] = cumulative[i - 1] + UInt32(frequencies[i - 1]) }
        let freqs = frequencies.map { UInt32($0) }
        var out: [UInt8] = []
        out.reserveCapacity(symbols.count / 4 + 16)
        var x = lowerBound
        let bound = (lowerBound >> UInt32(scaleBits)) << 8
        for i in stride(from: symbols.count - 1, through: 0, by: -1) {
            let s = Int(symbols[i])
            guard s < freqs.count, freqs[s] > 0 else {
                throw Failure(message: "mask entry \(i) has bit width \(s + 1), which has no frequency")
            }
            let f = freqs[s]
            let xMax = bound &* f
            while x >= xMax {
                out.append(UInt8(truncatingIfNeeded: x))
                x >>= 8
            }
            x = ((x / f) << UInt32(scaleBits)) + (x % f) + cumulative[s]
        }
        for shift in [0, 8, 16, 24] as [UInt32] { out.append(UInt8(truncatingIfNeeded: x >> shift)) }
        out.reverse()
        return out
    }

    /// Decodes `count` symbols into `output`, checking that the stream ends exactly.
    public static func decode(
        _ stream: UnsafeRawBufferPointer, count: Int, frequencies: [UInt16], into output: UnsafeMutableBufferPointer<UInt8>
    ) throws(Failure) {
        guard output.count >= count else { throw Failure(message: "mask output buffer too small") }
        guard frequencies.count <= 255, frequencies.reduce(0, { $0 + Int($1) }) == total else {
            throw Failure(message: "mask frequencies must sum to \(total)")
        }
        var slotSymbol = [UInt8](repeating: 0, count: total)
        var cumulative = [UInt32](repeating: 0, count: frequencies.count)
        var c = 0
        for (s, f) in frequencies.enumerated() {
            cumulative[s] = UInt32(c)
            for slot in c..<(c + Int(f)) { slotSymbol[slot] = UInt8(s) }
            c += Int(f)
        }
        let freqs = frequencies.map { UInt32($0) }
        guard stream.count >= 4 else { throw Failure(message: "mask stream is \(stream.count) bytes, shorter than its 4-byte state") }
        var x = UInt32(stream[0]) << 24 | UInt32(stream[1]) << 16 | UInt32(stream[2]) << 8 | UInt32(stream[3])
        var position = 4
        let mask = UInt32(total - 1)
        try slotSymbol.withUnsafeBufferPointer { (table: UnsafeBufferPointer<UInt8>) throws(Failure) in
            for i in 0..<count {
                let slot = x & mask
                let s = Int(table[Int(slot)])
                x = freqs[s] &* (x >> UInt32(scaleBits)) &+ slot &- cumulative[s]
                output[i] = UInt8(s)
                while x < lowerBound {
                    guard position < stream.count else {
                        throw Failure(message: "mask stream ends after \(i + 1) of \(count) entries")
                    }
                    x = (x << 8) | UInt32(stream[position])
                    position += 1
                }
            }
        }
        guard x == lowerBound, position == stream.count else {
            throw Failure(message: "mask stream does not end cleanly (damaged)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
