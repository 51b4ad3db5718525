import MBCore

/// `Add(Conv(...), R)` with R computed at run time (a residual) becomes the Conv with R as an
/// extra last input: the op adds R into its output in the same pass that applies a later fused
/// activation (`activation(conv + R)`). Only when the Conv output has no other reader and is
/// not a graph output, and R is not that output itself. If R's shape turns out to differ from
/// the Conv output's at run time, the op broadcasts as Add would. Gemm and MatMul (a
/// transformer block's projection plus its skip connection) fuse the same way: R goes after
/// Gemm's optional C (an empty name when C is absent) and after MatMul's B. For them R may also
/// be a constant (MatMul's bias: `Add(MatMul(x, W), b)`, so a following activation fuses too);
/// a Conv's constant bias is `FuseConvBias`'s.
enum FuseResidualAdd {
    /// The operators that take a residual, and how many inputs of their own they have (the
    /// residual is the input after them).
    static let ownInputs = ["Conv": 3, "Gemm": 3, "MatMul": 2]

    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        let producers = g.producers()
        for k in g.nodes.indices {
            guard let add = g.nodes[k], add.isOp("Add"), add.inputs.count == 2, add.outputs.count == 1,
                  add.inputs[0] != add.inputs[1] else { continue }
            for (y, r) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard let p = producers[y], let conv = g.nodes[p], conv.outputs.count == 1,
                      g.constant(r) == nil || !conv.isOp("Conv"),
                      let slots = Self.ownInputs[conv.opType], conv.domain.isEmpty || conv.domain == "ai.onnx",
                      conv.inputs.count >= 2, conv.inputs.count <= slots, readers[y] == 1, g.isInternal(y) else { continue }
                var plan = g.plan(of: p) ?? FusedPlan(operators: [conv.opType])
                guard plan.activation == .none, !plan.residual else { continue }
                // R must be computed before the Conv runs: its producer comes earlier.
                if let rp = producers[r], rp > p { continue }
                var fused = conv
                fused.inputs = Array(conv.inputs[..<2]) + (slots > 2 ? [conv.inputs.count > 2 ? conv.inputs[2] : ""] : []) + [r]
                g.nodes[p] = fused
                plan.operators.append("Add")
                plan.residual = true
                g.renameOutput(of: p, to: add.outputs[0])
                g.setPlan(plan, of: p)
                g.nodes[k] = nil
                readers[y] = 0
                g.rewrites += 1
                break
            }
        }
    }
}
