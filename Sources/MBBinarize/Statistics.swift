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
        precondition(original.count == packed.count)
        // Without reordering (tensor scales, channel scales along the outermost axis), T_hat is
        // rebuilt entry by entry as the error is summed: no reconstructed copy of the tensor.
        let errors = packed.layout.isIdentity
            ? Self.errors(original: original, identityLayout: packed)
            : Self.errors(original: original, reconstructed: packed.dequantized())
        self.init(count: original.count, errors: errors, packed: packed)
    }

    public init(original: [Float], reconstructed: [Float], packed: PackedTensor) {
        precondition(original.count == reconstructed.count && original.count == packed.count)
        self.init(count: original.count, errors: Self.errors(original: original, reconstructed: reconstructed), packed: packed)
    }

    private init(count: Int, errors e: (normalizedError: Double, sqnrDB: Double, maxAbsError: Double), packed: PackedTensor) {
        self.count = count
        normalizedError = e.normalizedError
        sqnrDB = e.sqnrDB
        maxAbsError = e.maxAbsError
        var counts = [Int](repeating: 0, count: packed.levels.count)
        for m in packed.mask { counts[Int(m) - 1] += 1 }
        bitCounts = counts
        signBits = counts.enumerated().reduce(0) { $0 + ($1.offset + 1) * $1.element }
        let n = Double(count)
        maskEntropy = n == 0 ? 0 : Self.entropy(counts.map { Double($0) / n })
        scaleCount = packed.levels.reduce(0) { $0 + $1.activeCounts.filter { $0 > 0 }.count }
    }

    /// Sums of the error measures, entry by entry in flat order (one order for every caller, so
    /// the streamed and the materialized forms give the same bits).
    struct ErrorSums {
        var signal = 0.0, noise = 0.0, maxError = 0.0

        @inline(__always) mutating func add(_ t: Float, _ r: Float) {
            let e = Double(t) - Double(r)
            signal += Double(t) * Double(t)
            noise += e * e
            maxError = max(maxError, abs(e))
        }

        var result: (normalizedError: Double, sqnrDB: Double, maxAbsError: Double) {
            (noise == 0 ? 0 : (signal == 0 ? .infinity : (noise / signal).squareRoot()),
             noise == 0 ? .infinity : 10 * log10(signal / noise), maxError)
        }
    }

    /// ‖T − T̂‖ / ‖T‖ (0 when both are zero), the SQNR in dB and the largest |T − T̂|, for any
    /// stored form (binarized, int-n, palette).
    public static func errors(original: [Float], reconstructed: [Float]) -> (normalizedError: Double, sqnrDB: Double, maxAbsError: Double) {
        var sums = ErrorSums()
        for (t, r) in zip(original, reconstructed) { sums.add(t, r) }
        return sums.result
    }

    /// `errors(original:reconstructed: packed.dequantized())` for a packed tensor whose group-major
    /// order is its flat order, with each T_hat_j made as `dequantized()` makes it (level 1's
    /// term, then each further level's added in Float) and used at once.
    static func errors(original: [Float], identityLayout packed: PackedTensor) -> (normalizedError: Double, sqnrDB: Double, maxAbsError: Double) {
        let layout = packed.layout
        precondition(layout.isIdentity)
        var sums = ErrorSums()
        let levels = packed.levels
        let count = levels.count
        // Raw views of every level's signs and scales (the loop runs once per element; array
        // accesses through `levels` would retain and check each time). Same order and the same
        // Float and Double operations as `dequantized()` and `errors(original:reconstructed:)`.
        let signs = UnsafeMutablePointer<UnsafePointer<UInt64>>.allocate(capacity: count)
        let scales = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: count)
        let cursor = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer { signs.deallocate(); scales.deallocate(); cursor.deallocate() }
        cursor.initialize(repeating: 0, count: count)
        func withLevels(_ k: Int, _ body: () -> Void) {
            guard k < count else { return body() }
            levels[k].signs.withUnsafeBufferPointer { s in
                levels[k].scales.withUnsafeBufferPointer { m in
                    signs[k] = s.baseAddress ?? UnsafePointer(bitPattern: 8)!
                    scales[k] = m.baseAddress ?? UnsafePointer(bitPattern: 8)!
                    withLevels(k + 1, body)
                }
            }
        }
        withLevels(0) {
            original.withUnsafeBufferPointer { t in
                packed.mask.withUnsafeBufferPointer { mask in
                    for g in 0..<layout.groupCount {
                        let start = g * layout.groupSize
                        for p in start..<(start + layout.groupSize) {
                            // Level 1 reaches every entry: bit p of its stream belongs to entry p.
                            let mu = scales[0][g]
                            var r = (signs[0][p >> 6] &>> UInt64(p & 63)) & 1 == 1 ? mu : -mu
                            for k in 1..<max(1, Int(mask[p])) {
                                let c = cursor[k]
                                cursor[k] = c + 1
                                let mu = scales[k][g]
                                r += (signs[k][c >> 6] &>> UInt64(c & 63)) & 1 == 1 ? mu : -mu
                            }
                            sums.add(t[p], r)
                        }
                    }
                }
            }
        }
        return sums.result
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
