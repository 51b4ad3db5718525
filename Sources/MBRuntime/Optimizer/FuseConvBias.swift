import MBCore
import MBKernels

/// `Add(Conv(x, W[, B]), b)` with `b` a constant per-output-channel vector (shape [C, 1, ...]
/// or [1, C, 1, ...] lining up with the Conv's channel axis) becomes the Conv's bias (added to
/// the one it has). Only when the Conv output has no other reader and is not a graph output.
enum FuseConvBias {
    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        let producers = g.producers()
        for k in g.nodes.indices {
            guard let add = g.nodes[k], add.isOp("Add"), add.inputs.count == 2, add.outputs.count == 1 else { continue }
            for (y, b) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard let p = producers[y], let conv = g.nodes[p], conv.isOp("Conv"), conv.outputs.count == 1, conv.inputs.count >= 2,
                      conv.inputs.count <= 3, readers[y] == 1, g.isInternal(y), (g.plan(of: p)?.activation ?? Activation.none) == .none,
                      let w = g.constant(conv.inputs[1]), let bt = g.constant(b), bt.elementType == .float else { continue }
                let ch = w.shape[0]
                // b must broadcast as [C] + ones(rank - 2) against [N, C, spatial...].
                var dims = bt.shape
                while dims.first == 1 && dims.count > w.rank - 1 { dims.removeFirst() }
                guard bt.rank <= w.rank, dims == [ch] + Array(repeating: 1, count: w.rank - 2) else { continue }
                var bias = bt.floats
                if conv.inputs.count == 3, !conv.inputs[2].isEmpty {
                    guard let old = g.constant(conv.inputs[2]), old.count == ch else { continue }
                    let o = old.floats
                    for c in 0..<ch { bias[c] += o[c] }
                }
                let out = add.outputs[0]
                let biasName = out + "::fused_bias"
                g.known[biasName] = MBTensor(shape: [ch], floats: bias)
                var fused = conv
                fused.inputs = [conv.inputs[0], conv.inputs[1], biasName]
                g.nodes[p] = fused
                var plan = g.plan(of: p) ?? FusedPlan(operators: ["Conv"])
                plan.operators.append("Add")
                g.renameOutput(of: p, to: out)
                g.setPlan(plan, of: p)
                g.nodes[k] = nil
                readers[y] = 0
                g.rewrites += 1
                break
            }
        }
    }
}
