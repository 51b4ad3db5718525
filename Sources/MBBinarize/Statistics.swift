import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How good a binarization is and what it costs. Errors are measured against
/// the dequantized tensor, i.e. what a reader of the packed form gets back.
public struct Statistics: Sendable, Equatable {
    public let count: Int
    /// ||T - T_hat|| / ||T|| (0 when both are zero).
    public let normalizedError: Double
    /// 10 log10(||T||^2 / ||T - T_hat||^2); +infinity when the error is zero.
    public let sqnrDB: Double
    public let maxAbsError: Double
    /// Entries with bit width b at index b - 1, for b in 1...levels.
    public let bitCounts: [Int]
    /// Sum of the bit widths: the number of stored sign bits.
    public let signBits: Int
    /// Entropy of the realized width distribution, in bits per entry: what a mask coded at its
    /// entropy costs (HBB.md section 6).
    public let maskEntropy: Double
    /// Scales actually stored: one per level per group that has active entries.
    public let scaleCount: Int

    /// Bits per stored scale (Float32).
    public static let scaleBits = 32

    public init(original: [Float], packed: PackedTensor) {
        self.init(original: original, reconstructed: packed.dequantized(), packed: packed)
    }

    public init(original: [Float], reconstructed: [Float], packed: PackedTensor) {
        precondition(original.count == reconstructed.count && original.count == packed.count)
        let e = Self.errors(original: original, reconstructed: reconstructed)
        count = original.count
        normalizedError = e.normalizedError
        sqnrDB = e.sqnrDB
        maxAbsError = e.maxAbsError
        var counts = [Int](repeating: 0, count: packed.levels.count)
        for m in packed.mask { counts[Int(m) - 1] += 1 }
        bitCounts = counts
        signBits = counts.enumerated().reduce(0) { $0 + ($1.offset + 1) * $1.element }
        let n = Double(original.count)
        maskEntropy = n == 0 ? 0 : Self.entropy(counts.map { Double($0) / n })
        scaleCount = packed.levels.reduce(0) { $0 + $1.activeCounts.filter { $0 > 0 }.count }
    }

    /// ‖T − T̂‖ / ‖T‖ (0 when both are zero), the SQNR in dB and the largest |T − T̂|, for any
    /// stored form (binarized, int-n, palette).
    public static func errors(original: [Float], reconstructed: [Float]) -> (normalizedError: Double, sqnrDB: Double, maxAbsError: Double) {
        var signal = 0.0, noise = 0.0, maxError = 0.0
        for (t, r) in zip(original, reconstructed) {
            let e = Double(t) - Double(r)
            signal += Double(t) * Double(t)
            noise += e * e
            maxError = max(maxError, abs(e))
        }
        return (noise == 0 ? 0 : (signal == 0 ? .infinity : (noise / signal).squareRoot()),
                noise == 0 ? .infinity : 10 * log10(signal / noise), maxError)
    }

    /// Realized fraction of each bit width (index b - 1).
    public var fractions: [Double] { bitCounts.map { count == 0 ? 0 : Double($0) / Double(count) } }

    /// Mean bit width: sign bits per entry.
    public var averageBits: Double { count == 0 ? 0 : Double(signBits) / Double(count) }

    /// Mask cost in bits for the whole tensor, at its entropy.
    public var maskBits: Double { maskEntropy * Double(count) }

    public var scaleBits: Int { scaleCount * Self.scaleBits }

    /// Storage cost, everything counted: (sign bits + mask at entropy + scales) per weight.
    public var storageBitsPerWeight: Double {
        count == 0 ? 0 : (Double(signBits) + maskBits + Double(scaleBits)) / Double(count)
    }

    /// Shannon entropy in bits of a distribution (zero entries contribute nothing).
    public static func entropy(_ p: [Double]) -> Double {
        p.reduce(0) { $0 - ($1 > 0 ? $1 * log2($1) : 0) }
    }
}
