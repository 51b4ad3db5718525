import MBCore
/// A named float tensor: the input of every binarization entry point.
public struct FloatTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) throws(BinarizeError) {
        guard shape.allSatisfy({ $0 >= 0 }), let count = Self.count(shape), count == values.count else {
            throw .invalidTensor(tensor: name, reason: "shape \(shape) does not hold \(values.count) values")
        }
        self.name = name
        self.shape = shape
        self.values = values
    }

    /// A rank-1 tensor.
    public init(name: String, values: [Float]) {
        self.name = name
        shape = [values.count]
        self.values = values
    }

    static func count(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }
}

/// The distribution P of HBB.md section 3: which bit widths, and what fraction of the entries
/// gets each. Bit widths are strictly ascending in 1...8; fractions are in [0, 1] and sum to 1.
public struct BitDistribution: Sendable, Hashable, CustomStringConvertible {
    public struct Entry: Sendable, Hashable {
        public let bits: Int
        public let fraction: Double
    }

    /// As given, zero fractions included (they are reported, e.g. the 0 of "9/1/0").
    public let entries: [Entry]

    public static let maxBits = 8

    public init(bits: [Int], fractions: [Double]) throws(BinarizeError) {
        guard !bits.isEmpty, bits.count == fractions.count else {
            throw .invalidConfiguration("\(bits.count) bit widths but \(fractions.count) fractions")
        }
        for (i, b) in bits.enumerated() {
            guard (1...Self.maxBits).contains(b) else { throw .invalidConfiguration("bit width \(b) is outside 1...\(Self.maxBits)") }
            guard i == 0 || b > bits[i - 1] else { throw .invalidConfiguration("bit widths must be strictly ascending, got \(bits)") }
        }
        for (b, p) in zip(bits, fractions) where !(p.isFinite && p >= 0 && p <= 1) {
            throw .invalidConfiguration("fraction for \(b)-bit must be in [0, 1], got \(p)")
        }
        let sum = fractions.reduce(0, +)
        guard abs(sum - 1) <= 1e-6 else { throw .invalidConfiguration("fractions must sum to 1, got \(sum) for \(fractions)") }
        entries = zip(bits, fractions).map { Entry(bits: $0, fraction: $1) }
    }

    /// Every entry gets `bits` bits (homogeneous residual binarization).
    public static func homogeneous(_ bits: Int) throws(BinarizeError) -> BitDistribution {
        try BitDistribution(bits: [bits], fractions: [1])
    }

    /// Tenths over bits 1, 2, 3, ...: `[7, 2, 1]` is 70 % 1-bit, 20 % 2-bit, 10 % 3-bit.
    public static func tenths(_ parts: [Int]) throws(BinarizeError) -> BitDistribution {
        guard parts.allSatisfy({ $0 >= 0 }), parts.reduce(0, +) == 10 else {
            throw .invalidConfiguration("tenths must be non-negative and sum to 10, got \(parts.map(String.init).joined(separator: "/"))")
        }
        return try BitDistribution(bits: Array(1...max(1, parts.count)), fractions: parts.map { Double($0) / 10 })
    }

    /// The entries the algorithm uses: those with a positive fraction. The last of them takes
    /// whatever rounding leaves, so a zero-fraction width never receives entries.
    public var used: [Entry] { entries.filter { $0.fraction > 0 } }

    /// The widest bit width in use: the number of levels K.
    public var maxUsedBits: Int { used.last!.bits }

    /// B = sum of b * p.
    public var averageBits: Double { entries.reduce(0) { $0 + Double($1.bits) * $1.fraction } }

    /// Entropy of P in bits (the cost of an unstructured mask per entry).
    public var entropy: Double { Statistics.entropy(entries.map(\.fraction)) }

    public var isHomogeneous: Bool { used.count == 1 }

    /// "7/2/1" when the widths are 1, 2, 3, ... and every fraction is a whole tenth; "3-bit" for
    /// a homogeneous distribution; otherwise "0.6,0.3,0.1@2,3,4".
    public var description: String {
        if isHomogeneous && entries.count == 1 { return "\(entries[0].bits)-bit" }
        let tenths = entries.map { ($0.fraction * 10).rounded() }
        if entries.map(\.bits) == Array(1...entries.count),
           zip(tenths, entries).allSatisfy({ abs($0 - $1.fraction * 10) < 1e-9 }) {
            return tenths.map { String(Int($0)) }.joined(separator: "/")
        }
        return entries.map { formatFraction($0.fraction) }.joined(separator: ",") + "@" + entries.map { String($0.bits) }.joined(separator: ",")
    }
}

/// Shortest decimal text for a fraction on a fine grid ("0.35", "1").
func formatFraction(_ p: Double) -> String {
    for digits in 0...6 {
        let scale = (0..<digits).reduce(1.0) { acc, _ in acc * 10 }
        let r = (p * scale).rounded() / scale
        if abs(r - p) < 1e-9 {
            var s = "\(r)"
            if s.hasSuffix(".0") { s.removeLast(2) }
            return s
        }
    }
    return "\(p)"
}

/// How the mask M is chosen (HBB.md section 3). Only the first four are in the paper.
public enum MaskMethod: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// Fewer bits to the values whose magnitude is closest to the mean magnitude (the paper's
    /// Algorithm 1 made precise; the default).
    case middleOut = "middle-out"
    /// Fewer bits to the largest magnitudes first (key -|T|).
    case topDown = "top-down"
    /// Fewer bits to the smallest magnitudes first (key |T|).
    case bottomUp = "bottom-up"
    /// A seeded random permutation.
    case random = "random"
    /// NOT in the paper: Middle-Out ranked on the residual of the previous level.
    case residualMiddleOut = "residual-middle-out"

    public var description: String { rawValue }

    /// The column title the paper uses.
    public var title: String {
        switch self {
        case .middleOut: return "Middle-Out"
        case .topDown: return "Top-Down"
        case .bottomUp: return "Bottom-Up"
        case .random: return "Random"
        case .residualMiddleOut: return "Residual-Middle-Out"
        }
    }
}

/// One binarization setting.
public struct BinarizationConfig: Sendable, Hashable {
    public var distribution: BitDistribution
    public var method: MaskMethod
    public var scale: ScaleMode
    /// Seed of the Random method's permutation.
    public var seed: UInt64

    public init(distribution: BitDistribution, method: MaskMethod = .middleOut, scale: ScaleMode = .tensor, seed: UInt64 = 0) {
        self.distribution = distribution
        self.method = method
        self.scale = scale
        self.seed = seed
    }
}
