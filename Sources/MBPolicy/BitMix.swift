import Foundation

/// P as a policy states it (`mix:` or `bits:`): which share of a tensor's entries gets which
/// bitwidth (HBB.md section 2), ascending by bitwidth. Homogeneous n-bit is {n: 1}. MBConvert
/// hands `pairs` to MBBinarize's `BitDistribution`, which enforces the same rules.
public struct BitMix: Sendable, Hashable, CustomStringConvertible {
    public struct Entry: Sendable, Hashable {
        public var bits: Int
        public var fraction: Double
        public init(bits: Int, fraction: Double) {
            self.bits = bits
            self.fraction = fraction
        }
    }

    public static let bitRange = 1...8

    /// Ascending by bits, no repeated bitwidth; zero fractions kept as written (they get no entry).
    public let entries: [Entry]

    /// Sorts by bitwidth. Returns nil when a bitwidth is outside 1...8 or repeats, a fraction is
    /// outside [0, 1], or the fractions do not sum to 1 within 1e-6 (the parser reports which).
    public init?(_ pairs: [(bits: Int, fraction: Double)]) {
        let sorted = pairs.sorted { $0.bits < $1.bits }
        guard sorted.allSatisfy({ Self.bitRange.contains($0.bits) && $0.fraction >= 0 && $0.fraction <= 1 }),
              Set(sorted.map(\.bits)).count == sorted.count,
              abs(sorted.reduce(0) { $0 + $1.fraction } - 1) <= Self.sumTolerance else { return nil }
        entries = sorted.map { Entry(bits: $0.bits, fraction: $0.fraction) }
    }

    public static let sumTolerance = 1e-6

    /// The entries with a positive fraction: the bitwidths that actually receive entries.
    public var used: [Entry] { entries.filter { $0.fraction > 0 } }

    public static func homogeneous(_ bits: Int) -> BitMix { BitMix([(bits, 1)])! }

    /// The form MBBinarize takes: [(bits, fraction)], smallest bitwidth first.
    public var pairs: [(bits: Int, fraction: Double)] { entries.map { ($0.bits, $0.fraction) } }

    public var isHomogeneous: Bool { used.count == 1 }
    /// K: the number of bit levels.
    public var maxBits: Int { used.last!.bits }
    /// B = sum of b * p.
    public var averageBits: Double { entries.reduce(0) { $0 + Double($1.bits) * $1.fraction } }
    /// H(P) in bits: what a per-entry mask costs at best.
    public var entropy: Double { Self.entropy(entries.map(\.fraction)) }

    static func entropy(_ fractions: [Double]) -> Double {
        fractions.reduce(0) { $1 > 0 ? $0 - $1 * log2($1) : $0 }
    }

    /// How many of `n` entries get each used bitwidth (parallel to `used`) under the HBB rounding
    /// rule: round(p * n) half away from zero for every bitwidth but the largest used one, which
    /// takes the rest, so no entry is left without a bitwidth.
    public func counts(elements n: Int) -> [Int] {
        let used = self.used
        var remaining = n
        var out: [Int] = []
        for (i, e) in used.enumerated() {
            if i == used.count - 1 {
                out.append(remaining)
            } else {
                let c = min(remaining, Int((e.fraction * Double(n)).rounded(.toNearestOrAwayFromZero)))
                out.append(c)
                remaining -= c
            }
        }
        return out
    }

    /// "{1: 0.7, 2: 0.2, 3: 0.1}" as a policy writes it, or "2-bit" when homogeneous.
    public var description: String {
        if entries.count == 1 { return "\(entries[0].bits)-bit" }
        return "{" + entries.map { "\($0.bits): " + formatNumber($0.fraction) }.joined(separator: ", ") + "}"
    }
}

/// Shortest text that reads back as the same number within 1e-9 ("0.7", "1", "1.45").
public func formatNumber(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    for digits in 0...9 {
        let s = String(format: "%.\(digits)f", x)
        if let back = Double(s), abs(back - x) < 1e-9 { return s }
    }
    return "\(x)"
}
