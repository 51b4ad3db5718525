import Foundation
import MBBinarize
import MBCore

/// `mbconvert study`: how well each binarization setting reconstructs given tensors. The
/// CLI parses arguments into `StudyOptions`, loads tensors, and prints a
/// `StudyReport` as a table, CSV or JSON; everything but argument plumbing lives here.
public struct StudyOptions: Sendable {
    /// Homogeneous bit counts (`--bits 1,2,3,4`).
    public var bits: [Int] = []
    /// Heterogeneous distributions (`--mix 7/2/1`, `--mix 0.6,0.3,0.1@2,3,4`).
    public var mixes: [BitDistribution] = []
    /// "Average bits only" searches (`--average 1.4`).
    public var averages: [Double] = []
    /// Averages whose whole grid is listed (`--sweep-average 1.4`).
    public var sweepAverages: [Double] = []
    /// Bit widths the average searches distribute over.
    public var gridBits: [Int] = [1, 2, 3]
    public var methods: [MaskMethod] = [.middleOut]
    public var scale: ScaleMode = .tensor
    /// Also report the least-squares refit of the scales.
    public var refit = false
    /// Also report the alternating refit (scales and sign patterns, `refit: alternating`).
    public var alternatingRefit = false
    /// Seed of the Random method.
    public var seed: UInt64 = 0

    public init() {}

    public var isEmpty: Bool { bits.isEmpty && mixes.isEmpty && averages.isEmpty && sweepAverages.isEmpty }
}

/// One line of a study: a setting applied to a tensor.
public struct StudyRow: Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        case homogeneous, mix, average, sweep
    }

    public var tensor: String
    public var kind: Kind
    /// The distribution P as `7/2/1`, `3-bit` or `0.6,0.3,0.1@2,3,4`.
    public var config: String
    public var method: String
    public var scale: String
    /// For `average` and `sweep` rows: the requested average.
    public var targetAverage: Double?
    public var averageBits: Double
    /// Realized fraction of each bit width 1...K.
    public var fractions: [Double]
    public var normalizedError: Double
    public var sqnrDB: Double
    public var maxAbsError: Double
    public var signBitsPerWeight: Double
    public var maskBitsPerWeight: Double
    public var scaleBitsPerWeight: Double
    public var storageBitsPerWeight: Double
    /// With `--refit`: the normalized error after the least-squares refit of the scales.
    public var refitNormalizedError: Double?
    /// With `--alternating-refit`: the normalized error after the alternating refit.
    public var alternatingRefitNormalizedError: Double?

    init(tensor: FloatTensor, kind: Kind, config: String, method: MaskMethod?, scale: ScaleMode, target: Double?,
         stats: Statistics, refit: Statistics?, alternating: Statistics? = nil) {
        self.tensor = tensor.name
        self.kind = kind
        self.config = config
        self.method = method?.rawValue ?? "-"
        self.scale = scale.description
        targetAverage = target
        averageBits = stats.averageBits
        fractions = stats.fractions
        normalizedError = stats.normalizedError
        sqnrDB = stats.sqnrDB
        maxAbsError = stats.maxAbsError
        let n = Double(max(stats.count, 1))
        signBitsPerWeight = Double(stats.signBits) / n
        maskBitsPerWeight = stats.maskEntropy
        scaleBitsPerWeight = Double(stats.scaleBits) / n
        storageBitsPerWeight = stats.storageBitsPerWeight
        refitNormalizedError = refit?.normalizedError
        alternatingRefitNormalizedError = alternating?.normalizedError
    }
}

/// What `study` found out about one input tensor.
public struct StudyTensor: Sendable, Codable {
    public var name: String
    public var shape: [Int]
    public var count: Int
    /// Exact mode: whether the tensor is already binarized (then it converts with zero error).
    public var exact: Bool
    /// Levels and scales of the exact decomposition, or why there is none.
    public var exactDetail: String
    /// For `--average`: the distribution chosen per method (method -> P).
    public var chosen: [String: String]
}

public struct StudyReport: Sendable, Codable {
    public var tensors: [StudyTensor]
    public var rows: [StudyRow]
    /// The methods in the order asked for (column order of the text table).
    public var methods: [String]
}

public enum Study {
    public static func run(_ tensors: [FloatTensor], _ options: StudyOptions) throws -> StudyReport {
        var rows: [StudyRow] = []
        var infos: [StudyTensor] = []
        for tensor in tensors {
            var info = StudyTensor(name: tensor.name, shape: tensor.shape, count: tensor.values.count, exact: false, exactDetail: "", chosen: [:])
            let axis: Int? = { if case .channel(let a) = options.scale { return a } else { return 0 } }()
            switch ExactMode.detect(tensor, channelAxis: axis) {
            case .exact(let packed):
                info.exact = true
                info.exactDetail = "\(packed.levels.count) level(s), \(packed.scale) scales: converts with zero error"
            case .notExact(let reason):
                info.exactDetail = reason
            }

            func row(_ kind: StudyRow.Kind, _ distribution: BitDistribution, _ method: MaskMethod?, target: Double? = nil) throws -> StudyRow {
                let config = BinarizationConfig(distribution: distribution, method: method ?? .middleOut, scale: options.scale, seed: options.seed)
                let packed = try Binarizer.binarize(tensor, config)
                let stats = Statistics(original: tensor.values, packed: packed)
                let refit = options.refit ? Statistics(original: tensor.values, packed: try Refit.refit(packed, original: tensor).packed) : nil
                let alternating = options.alternatingRefit
                    ? Statistics(original: tensor.values, packed: try AlternatingRefit.refit(packed, original: tensor).packed) : nil
                return StudyRow(tensor: tensor, kind: kind, config: distribution.description, method: method, scale: options.scale,
                                target: target, stats: stats, refit: refit, alternating: alternating)
            }

            for b in options.bits { rows.append(try row(.homogeneous, try .homogeneous(b), nil)) }
            for mix in options.mixes {
                for method in options.methods { rows.append(try row(.mix, mix, method)) }
            }
            for average in options.averages {
                for method in options.methods {
                    let result = try AverageSearch.search(tensor, average: average, bits: options.gridBits, method: method,
                                                          scale: options.scale, seed: options.seed)
                    info.chosen["\(formatAverage(average)) \(method)"] = result.best.distribution.description
                    rows.append(try row(.average, result.best.distribution, method, target: average))
                }
            }
            for average in options.sweepAverages {
                for distribution in try AverageSearch.grid(average: average, bits: options.gridBits) {
                    for method in options.methods { rows.append(try row(.sweep, distribution, method, target: average)) }
                }
            }
            infos.append(info)
        }
        return StudyReport(tensors: infos, rows: rows, methods: options.methods.map(\.rawValue))
    }
}

func formatAverage(_ x: Double) -> String {
    var s = String(format: "%.2f", x)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
}
