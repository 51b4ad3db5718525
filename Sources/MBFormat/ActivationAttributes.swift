import MBCore

/// A layer's input binarization (`ActivationSpec`) as node attributes (Schemas/mbm-format.md),
/// written by the converter on each Conv/Gemm/MatMul whose weight's rule says `activations:` and
/// read back by the runtime. One place for both directions:
///   mb.activations.bits        ints    bit widths, ascending (the used ones)
///   mb.activations.fractions   doubles fraction of entries per width (sum 1), exactly P's
///                              (files written before: floats, read rounded to 6 decimals)
///   mb.activations.method      string  "middle-out"
///   mb.activations.granularity string  "element" or "group:N"
public enum ActivationAttributes {
    public static let prefix = "mb.activations."
    public static let bits = prefix + "bits"
    public static let fractions = prefix + "fractions"
    public static let method = prefix + "method"
    public static let granularity = prefix + "granularity"

    /// Why a node's attributes do not describe an input binarization the runtime can run.
    public struct Problem: Error, Sendable, Equatable {
        /// `invalid`: the attributes contradict themselves; `unsupported`: valid but not implemented.
        public enum Kind: Sendable { case invalid, unsupported }
        public let kind: Kind
        public let message: String
    }

    public static func encode(_ spec: ActivationSpec) -> [IRAttribute] {
        let used = spec.distribution.used
        return [
            IRAttribute(name: bits, value: .ints(used.map { Int64($0.bits) })),
            IRAttribute(name: fractions, value: .doubles(used.map(\.fraction))),
            IRAttribute(name: method, value: .string(Array(MaskMethod.middleOut.rawValue.utf8))),
            IRAttribute(name: granularity, value: .string(Array(spec.granularity.description.utf8))),
        ]
    }

    /// The node's input binarization, or nil when it has none.
    public static func decode(_ attributes: [IRAttribute]) throws(Problem) -> ActivationSpec? {
        func value(_ name: String) -> IRAttributeValue? { attributes.first { $0.name == name }?.value }
        func invalid(_ message: String) -> Problem { Problem(kind: .invalid, message: message) }
        guard let bitsValue = value(bits) else {
            if attributes.contains(where: { $0.name.hasPrefix(prefix) }) { throw invalid("\(prefix)* attributes without \(bits)") }
            return nil
        }
        let widths: [Int]
        switch bitsValue {
        case .ints(let xs): widths = xs.map { Int(truncatingIfNeeded: $0) }
        case .int(let x): widths = [Int(truncatingIfNeeded: x)]
        default: throw invalid("attribute '\(bits)' must be a list of ints")
        }
        // Exactly P's fractions (binary64); files written before stored float32, which cannot
        // hold 0.7: those are rounded to 6 decimals, the Double the policy meant.
        let f: [Double]
        switch value(fractions) {
        case .doubles(let xs)?: f = xs
        case .floats(let xs)?: f = xs.map { (Double($0) * 1e6).rounded() / 1e6 }
        case nil: throw invalid("\(fractions) must list one fraction per bit width of \(bits) \(widths)")
        default: throw invalid("attribute '\(fractions)' must be a list of doubles (or floats)")
        }
        guard f.count == widths.count, !widths.isEmpty else {
            throw invalid("\(fractions) must list one fraction per bit width of \(bits) \(widths)")
        }
        for (i, b) in widths.enumerated() where !BitDistribution.bitRange.contains(b) || (i > 0 && b <= widths[i - 1]) {
            throw invalid("\(bits) must be ascending bit widths from 1 to 8, got \(widths)")
        }
        guard f.allSatisfy({ $0 >= 0 && $0 <= 1 }), abs(f.reduce(0, +) - 1) <= 1e-5,
              let distribution = try? BitDistribution(bits: widths, fractions: f, sumTolerance: 1e-5) else {
            throw invalid("\(fractions) must be in [0, 1] and sum to 1, got \(f)")
        }
        let methodName = try string(value(method), method, default: MaskMethod.middleOut.rawValue)
        guard methodName == MaskMethod.middleOut.rawValue else {
            throw Problem(kind: .unsupported, message: "\(method) '\(methodName)' (the runtime binarizes inputs by middle-out)")
        }
        let text = try string(value(granularity), granularity, default: "element")
        guard let g = MaskGranularity(parsing: text), g != .channel else {
            throw invalid("\(granularity) must be element or group:N, got '\(text)'")
        }
        return ActivationSpec(distribution: distribution, granularity: g)
    }

    static func string(_ v: IRAttributeValue?, _ name: String, default d: String) throws(Problem) -> String {
        guard let v else { return d }
        guard case .string(let bytes) = v else { throw Problem(kind: .invalid, message: "attribute '\(name)' must be a string") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
