import MBCore
import MBPolicy

/// What storing a tensor will cost, predicted from its shape and P without binarizing it:
/// sign bits (b per entry of bitwidth b), the mask at the entropy of the realized widths (0 when
/// homogeneous), and one 32-bit scale per active level per tensor or per output channel, as
/// HBB.md section 6 counts. Container headers are not included.
public struct StoragePrediction: Sendable, Equatable, Codable {
    public var elements: Int
    public var signBits: Int
    public var maskBits: Double
    public var scaleCount: Int
    /// Bits of a tensor kept as float (0 when binarized).
    public var floatBits: Int
    /// `int:` / `palette:` tensors: the codes, and the scales, zero points or palettes (nil otherwise).
    public var codeBits: Int?
    public var tableBits: Int?

    public static let scaleBits = 32

    public var totalBits: Double {
        Double(signBits) + maskBits + Double(scaleCount * Self.scaleBits + floatBits + (codeBits ?? 0) + (tableBits ?? 0))
    }
    public var bitsPerWeight: Double { elements == 0 ? 0 : totalBits / Double(elements) }
    /// Whole bytes of the payload.
    public var bytes: Int { Int((totalBits / 8).rounded(.up)) }
    /// Sign bits per entry: the average bitwidth B actually realized.
    public var averageBits: Double { elements == 0 ? 0 : Double(signBits) / Double(elements) }

    public static func keep(_ type: ElementType, elements: Int) -> StoragePrediction {
        StoragePrediction(elements: elements, signBits: 0, maskBits: 0, scaleCount: 0, floatBits: elements * type.traits.bitsPerElement)
    }

    /// `int:` / `palette:`: n-bit codes, and per group a scale and an 8-bit zero point (int) or
    /// 2^n values (palette), each value 32 or 16 bits (`scale_type`). Exact: the payload less its padding.
    public static func quantized(_ q: WeightDecision.Quantization, elements: Int, groups: Int) -> StoragePrediction {
        let valueBits = q.scaleType == .float16 ? 16 : 32
        let perGroup = q.spec.scheme == .linear ? valueBits + 8 : valueBits << q.spec.bits
        var p = StoragePrediction(elements: elements, signBits: 0, maskBits: 0, scaleCount: 0, floatBits: 0)
        p.codeBits = elements * q.spec.bits
        p.tableBits = groups * perGroup
        return p
    }

    /// Binarized with `mix`; with `groups` > 1 (channel scales) every group gets P on its own,
    /// as MBBinarize does, so rounding happens per group. `maskSymbols`: the widths a structured
    /// mask stores (one per group of entries; the writer's mask coding 2), the entropy each.
    public static func binarized(_ mix: BitDistribution, elements: Int, groups: Int, maskSymbols: Int? = nil) -> StoragePrediction {
        guard elements > 0 else { return StoragePrediction(elements: 0, signBits: 0, maskBits: 0, scaleCount: 0, floatBits: 0) }
        // Groups that do not divide the tensor cannot be channels: predict one group.
        let groups = groups >= 1 && elements % groups == 0 ? groups : 1
        let used = mix.used
        let perGroup = mix.counts(elements: elements / groups)
        let counts = perGroup.map { $0 * groups }
        let signBits = zip(used, counts).reduce(0) { $0 + $1.0.bits * $1.1 }
        // Level k is active where some entry has a width >= k.
        var levels = 0
        for k in 1...(used.last?.bits ?? 1) where zip(used, perGroup).contains(where: { $0.bits >= k && $1 > 0 }) { levels += 1 }
        let n = Double(elements)
        let entropy = counts.reduce(0.0) { acc, c in c > 0 ? acc - Double(c) / n * log2(Double(c) / n) : acc }
        return StoragePrediction(elements: elements, signBits: signBits, maskBits: mix.isHomogeneous ? 0 : entropy * Double(maskSymbols ?? elements),
                                 scaleCount: levels * groups, floatBits: 0)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
