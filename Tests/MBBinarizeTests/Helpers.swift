import MBBinarize
import MBCore

/// A seeded standard-normal tensor.
func normalTensor(_ n: Int, seed: UInt64, name: String = "normal", shape: [Int]? = nil) -> FloatTensor {
    var g = SeededGenerator(seed: seed)
    let values = (0..<n).map { _ in Float(g.nextNormal()) }
    return try! FloatTensor(name: name, shape: shape ?? [n], values: values)
}

/// A seeded tensor of small integers (many exact ties in every key).
func tiedTensor(_ n: Int, seed: UInt64, shape: [Int]? = nil, levels: Int = 9) -> FloatTensor {
    var g = SeededGenerator(seed: seed)
    let values = (0..<n).map { _ in Float(Int(g.next() % UInt64(levels)) - levels / 2) * 0.5 }
    return try! FloatTensor(name: "tied", shape: shape ?? [n], values: values)
}

func tenths(_ parts: [Int]) -> BitDistribution { try! .tenths(parts) }

/// Bit-exact comparison of two packed tensors (== on Float would equate 0 and -0).
func sameBits(_ a: PackedTensor, _ b: PackedTensor) -> Bool {
    a == b && zip(a.levels, b.levels).allSatisfy { la, lb in
        zip(la.scales, lb.scales).allSatisfy { $0.bitPattern == $1.bitPattern }
    }
}

func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// Normalized error ||T - T_hat|| / ||T|| of a packed tensor.
func normalizedError(_ t: FloatTensor, _ p: PackedTensor) -> Double {
    Statistics(original: t.values, packed: p).normalizedError
}
