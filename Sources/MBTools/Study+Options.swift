import Foundation
import MBBinarize
import MBConvert
import MBCore
import MBONNX

/// The grammars of `study`'s option values (`mbconvert` hands them to ArgumentParser as
/// transforms). Every error says what is wrong; ArgumentParser names the option and the value.
public enum StudyParse {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Why an option value is wrong; ArgumentParser names the option and the value before it.
    static func fail(_ why: String) -> Failure { Failure(description: why) }

    /// `1,2,3,4`
    public static func bitList(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [Int] = []
        for p in parts {
            guard let b = Int(p), (1...BitDistribution.maxBits).contains(b) else {
                throw fail("expected bit widths 1...\(BitDistribution.maxBits) separated by commas, got '\(p)'")
            }
            out.append(b)
        }
        return out
    }

    /// `7/2/1` (tenths over bits 1, 2, 3, ...), several separated by commas (`9/1/0,7/2/1`), or
    /// one `0.6,0.3,0.1@2,3,4` (fractions @ bit widths) per value.
    public static func mixes(_ text: String) throws -> [BitDistribution] {
        if text.contains("@") {
            let halves = text.split(separator: "@", omittingEmptySubsequences: false)
            guard halves.count == 2 else { throw fail("expected FRACTIONS@BITS, e.g. 0.6,0.3,0.1@2,3,4") }
            var fractions: [Double] = []
            for f in halves[0].split(separator: ",", omittingEmptySubsequences: false) {
                guard let x = Double(f.trimmingCharacters(in: .whitespaces)) else {
                    throw fail("'\(f)' is not a fraction")
                }
                fractions.append(x)
            }
            let bits = try bitList(String(halves[1]))
            do {
                return [try BitDistribution(bits: bits, fractions: fractions)]
            } catch {
                throw fail("\(error)")
            }
        }
        var out: [BitDistribution] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.count <= BitDistribution.maxBits, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                throw fail("'\(item)' is not tenths like 7/2/1 (nor FRACTIONS@BITS like 0.6,0.3,0.1@2,3,4)")
            }
            do {
                out.append(try BitDistribution.tenths(parts.map { $0! }))
            } catch {
                throw fail("\(error)")
            }
        }
        return out
    }

    /// `1.4` or `1.2,1.4`
    public static func averages(_ text: String) throws -> [Double] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { p in
            guard let x = Double(p.trimmingCharacters(in: .whitespaces)), x.isFinite, x >= 1, x <= Double(BitDistribution.maxBits) else {
                throw fail("expected average bit counts in 1...\(BitDistribution.maxBits) separated by commas, got '\(p)'")
            }
            return x
        }
    }

    /// `normal:1000000:0`, `laplace:4096x9216:1`, `uniform:1000:7`: a seeded synthetic tensor of
    /// unit variance (uniform on [-sqrt 3, sqrt 3], Laplace with scale 1/sqrt 2).
    public static func synthetic(_ text: String) throws -> FloatTensor {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { throw fail("expected KIND:COUNT:SEED, e.g. normal:1000000:0") }
        let dims = parts[1].split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw fail("COUNT must be a positive number or dimensions like 64x576, got '\(parts[1])'")
        }
        let shape = dims.map { $0! }
        guard let n = shape.reduce(1 as Int?, { acc, d in acc.flatMap { $0.multipliedReportingOverflow(by: d).overflow ? nil : $0 * d } }),
              n <= 1 << 31 else { throw fail("too many values") }
        guard let seed = UInt64(parts[2]) else { throw fail("SEED must be a non-negative integer, got '\(parts[2])'") }
        var g = SeededGenerator(seed: seed)
        var values = [Float](repeating: 0, count: n)
        switch parts[0] {
        case "normal":
            for i in 0..<n { values[i] = Float(g.nextNormal()) }
        case "uniform":
            for i in 0..<n { values[i] = Float((2 * g.nextUnitDouble() - 1) * 3.0.squareRoot()) }
        case "laplace":
            for i in 0..<n {
                let u = g.nextUnitDouble() - 0.5
                values[i] = Float(-(u < 0 ? -1.0 : 1.0) * log(1 - 2 * abs(u)) / 2.0.squareRoot())
            }
        default:
            throw fail("unknown distribution '\(parts[0])' (normal, laplace or uniform)")
        }
        return try FloatTensor(name: text, shape: shape, values: values)
    }

    /// A `.npy` file as a float tensor named after the file.
    public static func npyTensor(path: String) throws -> FloatTensor {
        let array = try NPY.read(path: path)
        return try FloatTensor(name: URL(fileURLWithPath: path).lastPathComponent, shape: array.shape, values: array.floatValues())
    }
}

extension StudyParse {
    /// Float weights of an `.onnx` model: those named (any float constant, folded ones included),
    /// or with `all` every weight of Conv/ConvTranspose/Gemm/MatMul.
    public static func onnxTensors(path: String, names: [String], all: Bool) throws -> [FloatTensor] {
        let model = try ONNXReader().load(path: path)
        let discovery = try WeightDiscovery(onnx: model, file: path)
        let wanted: [String] = all ? discovery.weights.map(\.name) : names
        guard !wanted.isEmpty else { throw Failure(description: "\(path): the model has no weights to study") }
        let known = Set(discovery.tensors.map(\.name))
        return try wanted.map { name in
            guard known.contains(name) else {
                throw Failure(description: "\(path): no float constant named '\(name)' (weights: \(discovery.weights.prefix(8).map(\.name).joined(separator: ", "))\(discovery.weights.count > 8 ? ", ..." : ""))")
            }
            return try discovery.floatTensor(name)
        }
    }
}
