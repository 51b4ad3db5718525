import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (reductions none, sum and mean; class
/// weights; ignore_index), for models exported with their loss, and for evaluation graphs.
enum LossOps {
    enum Reduction: String { case none, sum, mean }

    static func reduction(_ n: NodeContext) throws -> Reduction {
        let name = try n.string("reduction", default: "mean")
        guard let r = Reduction(rawValue: name) else { throw n.bad("reduction '\(name)' is not none, sum or mean") }
        return r
    }

    /// The loss of log-probabilities `x` [N, C, d...] against class indices `target` [N, d...].
    static func negativeLogLikelihood(_ x: MBTensor, _ target: MBTensor, weight: MBTensor?, ignoreIndex: Int?, _ r: Reduction,
                                      _ c: ExecutionContext) throws -> MBTensor {
        guard x.rank >= 2, target.rank == x.rank - 1, target.shape[0] == x.shape[0], Array(x.shape[2...]) == Array(target.shape[1...]) else {
            throw OpError("input \(x.shape) and target \(target.shape) must be [N, C, d...] and [N, d...]")
        }
        let classes = x.shape[1], inner = x.shape[2...].reduce(1, *)
        if let weight, weight.count != classes { throw OpError("weight has \(weight.count) values for \(classes) classes") }
        let labels = intValues(target), weights = weight.map { $0.floats }
        let src = x.pointer(Float.self)
        var losses = [Float](repeating: 0, count: labels.count)
        var total = 0.0, weightTotal = 0.0
        for (k, label) in labels.enumerated() {
            if label == ignoreIndex { continue }
            guard label >= 0 && label < classes else { throw OpError("target \(label) is outside 0..<\(classes)") }
            let w = weights?[label] ?? 1
            let n = k / inner, d = k % inner
            losses[k] = -src[(n * classes + label) * inner + d] * w
            total += Double(losses[k])
            weightTotal += Double(w)
        }
        switch r {
        case .none: return MBTensor(shape: target.shape, floats: losses)
        case .sum: return MBTensor(Float(total))
        case .mean: return MBTensor(Float(total / weightTotal))
        }
    }

    static let table: [String: OpTable.Compile] = [
        "NegativeLogLikelihoodLoss": { n in
            let r = try reduction(n), ignore = try n.int("ignore_index")
            return { i, c in
                [try negativeLogLikelihood(try i.float(0, "input"), try i.required(1, "target"), weight: try i[2].map { _ in try i.float(2, "weight") },
                                           ignoreIndex: ignore, r, c)]
            }
        },
        "SoftmaxCrossEntropyLoss": { n in
            let r = try reduction(n), ignore = try n.int("ignore_index")
            return { i, c in
                let scores = try i.float(0, "scores")
                guard scores.rank >= 2 else { throw OpError("scores \(scores.shape) must be [N, C, d...]") }
                // log_softmax over the class axis.
                let (outer, classes, inner) = (scores.shape[0], scores.shape[1], scores.shape[2...].reduce(1, *))
                let logProb = try c.alloc(.float, scores.shape)
                let s = scores.pointer(Float.self), p = logProb.mutable(Float.self)
                for o in 0..<outer {
                    for q in 0..<inner {
                        var m = -Float.infinity
                        for k in 0..<classes { m = max(m, s[(o * classes + k) * inner + q]) }
                        var sum: Float = 0
                        for k in 0..<classes { sum += expf(s[(o * classes + k) * inner + q] - m) }
                        let l = logf(sum)
                        for k in 0..<classes { p[(o * classes + k) * inner + q] = s[(o * classes + k) * inner + q] - m - l }
                    }
                }
                let loss = try negativeLogLikelihood(logProb, try i.required(1, "labels"), weight: try i[2].map { _ in try i.float(2, "weights") },
                                                     ignoreIndex: ignore, r, c)
                return [loss, logProb]
            }
        },
    ]
}
