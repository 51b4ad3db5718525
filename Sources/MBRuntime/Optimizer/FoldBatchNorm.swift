import MBCore
import MBKernels

/// BatchNormalization (inference) right after a Conv, ConvTranspose or Gemm whose output only
/// it reads is folded into that node's weights and bias: W' = W * s per output channel,
/// B' = (B - mean) * s + beta with s = scale / sqrt(var + eps). Needs the weights, bias and
/// the four BN parameters known at load; a binarized weight (.mbm) is never known, so BN
/// stays a separate per-channel affine there and the stored values are untouched.
enum FoldBatchNorm {
    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        let producers = g.producers()
        for k in g.nodes.indices {
            guard let bn = g.nodes[k], bn.isOp("BatchNormalization"), bn.inputs.count == 5,
                  bn.outputs.count == 1 || bn.outputs.dropFirst().allSatisfy({ $0.isEmpty }),
                  g.int(bn, "training_mode", 0) == 0, g.int(bn, "spatial", 1) == 1 else { continue }
            let x = bn.inputs[0]
            guard let p = producers[x], let producer = g.nodes[p], readers[x] == 1, g.isInternal(x),
                  producer.outputs.count == 1, (g.plan(of: p)?.activation ?? Activation.none) == .none, g.plan(of: p)?.residual != true else { continue }
            let params = bn.inputs[1...].map { g.constant($0) }
            guard params.allSatisfy({ $0?.elementType == .float }) else { continue }
            let s = params[0]!.floats, beta = params[1]!.floats, mean = params[2]!.floats, variance = params[3]!.floats
            let eps = g.float(bn, "epsilon", 1e-5)
            let ch = s.count
            guard beta.count == ch, mean.count == ch, variance.count == ch else { continue }
            var mul = [Float](repeating: 0, count: ch), add = [Float](repeating: 0, count: ch)
            for c in 0..<ch {
                mul[c] = s[c] / (variance[c] + eps).squareRoot()
                add[c] = beta[c] - mean[c] * mul[c]
            }
            guard var folded = fold(producer, mul: mul, add: add, &g) else { continue }
            let out = bn.outputs[0]
            folded.outputs = [out]
            let old = producer.outputs[0]
            g.nodes[p] = folded
            if let plan = g.plans.removeValue(forKey: old) { g.plans[out] = plan }
            var plan = g.plans[out] ?? FusedPlan(operators: [producer.opType])
            plan.operators.append("BatchNormalization")
            g.plans[out] = plan
            g.nodes[k] = nil
            readers[x] = 0
            g.rewrites += 1
        }
    }

    /// The producer with BN folded in, or nil when its weights are not known or do not fit.
    static func fold(_ n: IRNode, mul: [Float], add: [Float], _ g: inout OptimizerGraph) -> IRNode? {
        let ch = mul.count
        guard n.inputs.count >= 2, let w = g.constant(n.inputs[1]), w.elementType == .float else { return nil }
        let biasName = n.inputs.count > 2 ? n.inputs[2] : ""
        let bias: [Float]?
        if biasName.isEmpty { bias = nil } else {
            guard let b = g.constant(biasName), b.elementType == .float else { return nil }
            bias = b.floats
        }
        var wv = w.floats
        var out = n
        let base = n.outputs[0]
        if n.isOp("Conv") {
            guard w.rank >= 3, w.shape[0] == ch, bias == nil || bias!.count == ch else { return nil }
            let per = w.count / ch
            for c in 0..<ch { for j in 0..<per { wv[c * per + j] *= mul[c] } }
        } else if n.isOp("ConvTranspose") {
            let groups = Int(g.int(n, "group", 1))
            guard w.rank >= 3, groups >= 1, w.shape[0] % groups == 0, w.shape[1] * groups == ch, bias == nil || bias!.count == ch else { return nil }
            let inPerGroup = w.shape[0] / groups, outPerGroup = w.shape[1], plane = w.shape[2...].reduce(1, *)
            for ci in 0..<w.shape[0] {
                let gi = ci / inPerGroup
                for j in 0..<outPerGroup { for q in 0..<plane { wv[(ci * outPerGroup + j) * plane + q] *= mul[gi * outPerGroup + j] } }
            }
        } else if n.isOp("Gemm") {
            guard w.rank == 2 else { return nil }
            let transB = g.int(n, "transB", 0) != 0
            let nOut = transB ? w.shape[0] : w.shape[1]
            guard nOut == ch, bias == nil || bias!.count == ch || bias!.count == 1 else { return nil }
            // Only a C of shape [N], [1, N] or a scalar folds into a per-column bias.
            if !biasName.isEmpty, let b = g.constant(biasName), !(b.rank <= 1 || (b.rank == 2 && b.shape[0] == 1)) { return nil }
            let rows = w.shape[0], cols = w.shape[1]
            for r in 0..<rows { for c in 0..<cols { wv[r * cols + c] *= mul[transB ? r : c] } }
            let betaAttr = g.float(n, "beta", 1)
            var newC = [Float](repeating: 0, count: ch)
            for c in 0..<ch {
                let b = bias.map { $0.count == 1 ? $0[0] : $0[c] } ?? 0
                newC[c] = betaAttr * b * mul[c] + add[c]
            }
            let cName = base + "::bn_folded_C"
            g.known[cName] = MBTensor(shape: [ch], floats: newC)
            let wName = base + "::bn_folded_W"
            g.known[wName] = MBTensor(shape: w.shape, floats: wv)
            out.inputs = [n.inputs[0], wName, cName]
            out.attributes = n.attributes.filter { $0.name != "beta" } + [IRAttribute(name: "beta", value: .float(1))]
            return out
        } else {
            return nil
        }
        var newB = [Float](repeating: 0, count: ch)
        for c in 0..<ch { newB[c] = (bias?[c] ?? 0) * mul[c] + add[c] }
        let wName = base + "::bn_folded_W", bName = base + "::bn_folded_B"
        g.known[wName] = MBTensor(shape: w.shape, floats: wv)
        g.known[bName] = MBTensor(shape: [ch], floats: newB)
        out.inputs = [n.inputs[0], wName, bName] + Array(n.inputs.dropFirst(3))
        return out
    }
}
