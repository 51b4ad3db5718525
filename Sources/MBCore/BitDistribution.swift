#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bit distribution P of HBB.md sections 2 and 3: which bit widths, and what fraction of a
/// tensor's entries gets each. The one type for P everywhere: a policy's `mix:`/`bits:`, the
/// binarizer's configuration, a layer's activation binarization, the searches' candidates.
/// Bit widths strictly ascend in 1...8; fractions are in [0, 1] and sum to 1 within 1e-6.
/// Homogeneous n-bit is {n: 1}.
public struct BitDistribution: Sendable, Hashable, CustomStringConvertible {
    public struct Entry: Sendable, Hashable {
        public let bits: Int
        public let fraction: Double
        public init(bits: Int, fraction: Double) {
            self.bits = bits
            self.fraction = fraction
        }
    }

    /// Why a distribution is not valid (one sentence, no file or place: callers add those).
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public init(_ message: String) { self.message = message }
        public var description: String { "invalid binarization setting: \(message)" }
    }

    public static let maxBits = 8
    public static let bitRange = 1...maxBits
    public static let sumTolerance = 1e-6

    /// As given, zero fractions included (they are reported, e.g. the 0 of "9/1/0").
    public let entries: [Entry]

    /// `sumTolerance` loosens the sum check for fractions that went through float32 (stored attributes).
    public init(bits: [Int], fractions: [Double], sumTolerance: Double = Self.sumTolerance) throws(Invalid) {
        guard !bits.isEmpty, bits.count == fractions.count else {
            throw Invalid("\(bits.count) bit widths but \(fractions.count) fractions")
        }
        for (i, b) in bits.enumerated() {
            guard Self.bitRange.contains(b) else { throw Invalid("bit width \(b) is outside 1...\(Self.maxBits)") }
            guard i == 0 || b > bits[i - 1] else { throw Invalid("bit widths must be strictly ascending, got \(bits)") }
        }
        for (b, p) in zip(bits, fractions) where !(p.isFinite && p >= 0 && p <= 1) {
            throw Invalid("fraction for \(b)-bit must be in [0, 1], got \(p)")
        }
        let sum = fractions.reduce(0, +)
        guard abs(sum - 1) <= sumTolerance else { throw Invalid("fractions must sum to 1, got \(sum) for \(fractions)") }
        entries = zip(bits, fractions).map { Entry(bits: $0, fraction: $1) }
    }

    /// (bits, fraction) pairs in any order, sorted by bit width (a policy's `mix:`). Nil when a
    /// bit width is outside 1...8 or repeats, a fraction is outside [0, 1], or the fractions do
    /// not sum to 1 (the policy parser reports which).
    public init?(_ pairs: [(bits: Int, fraction: Double)]) {
        let sorted = pairs.sorted { $0.bits < $1.bits }
        guard let d = try? BitDistribution(bits: sorted.map(\.bits), fractions: sorted.map(\.fraction)) else { return nil }
        self = d
    }

    /// Every entry gets `bits` bits (homogeneous residual binarization).
    public static func homogeneous(_ bits: Int) throws(Invalid) -> BitDistribution {
        try BitDistribution(bits: [bits], fractions: [1])
    }

    /// Tenths over bits 1, 2, 3, ...: `[7, 2, 1]` is 70 % 1-bit, 20 % 2-bit, 10 % 3-bit.
    public static func tenths(_ parts: [Int]) throws(Invalid) -> BitDistribution {
        guard parts.allSatisfy({ $0 >= 0 }), parts.reduce(0, +) == 10 else {
            throw Invalid("tenths must be non-negative and sum to 10, got \(parts.map(String.init).joined(separator: "/"))")
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

    /// H(P) in bits: what a per-entry mask costs at best.
    public var entropy: Double { Self.entropy(entries.map(\.fraction)) }

    /// Entropy in bits of a discrete distribution (zero fractions contribute nothing).
    public static func entropy(_ fractions: [Double]) -> Double {
        fractions.reduce(0) { $1 > 0 ? $0 - $1 * log2($1) : $0 }
    }

    public var isHomogeneous: Bool { used.count == 1 }

    /// [(bits, fraction)], smallest bit width first.
    public var pairs: [(bits: Int, fraction: Double)] { entries.map { ($0.bits, $0.fraction) } }

    /// How many of `n` entries get each used bit width (parallel to `used`) under the HBB
    /// rounding rule: round(p * n) half away from zero for every width but the largest used one,
    /// which takes the rest, so no entry is left without a bit width.
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

    /// "7/2/1" when the widths are 1, 2, 3, ... and every fraction is a whole tenth; "3-bit" for
    /// a homogeneous distribution; otherwise "0.6,0.3,0.1@2,3,4" (the `study` tables' notation).
    public var description: String {
        if isHomogeneous && entries.count == 1 { return "\(entries[0].bits)-bit" }
        let tenths = entries.map { ($0.fraction * 10).rounded() }
        if entries.map(\.bits) == Array(1...entries.count),
           zip(tenths, entries).allSatisfy({ abs($0 - $1.fraction * 10) < 1e-9 }) {
            return tenths.map { String(Int($0)) }.joined(separator: "/")
        }
        return entries.map { Self.shortFraction($0.fraction) }.joined(separator: ",") + "@" + entries.map { String($0.bits) }.joined(separator: ",")
    }

    /// "{1: 0.7, 2: 0.2, 3: 0.1}" as a policy writes it, or "2-bit" for a single width.
    public var policyText: String {
        if entries.count == 1 { return "\(entries[0].bits)-bit" }
        return "{" + entries.map { "\($0.bits): " + formatNumber($0.fraction) }.joined(separator: ", ") + "}"
    }

    /// Shortest decimal text for a fraction on a fine grid ("0.35", "1").
    static func shortFraction(_ p: Double) -> String {
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
}

/// Shortest text that reads back as the same number within 1e-9 ("0.7", "1", "1.45").
public func formatNumber(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    for digits in 0...9 {
        let s = fixedDigits(x, digits)
        if let back = Double(s), abs(back - x) < 1e-9 { return s }
    }
    return "\(x)"
}

/// printf's "%.*f" (what Foundation's String(format:) prints) through libc's vsnprintf: MBCore
/// is part of the runtime, which does not load Foundation.
private func fixedDigits(_ x: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 400)
    let n = withVaList([Int32(digits), x]) { vsnprintf(&buffer, buffer.count, "%.*f", $0) }
    guard n >= 0, Int(n) < buffer.count else { return "\(x)" }
    return String(decoding: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
