import MBCore

/// `Add(Conv(...), R)` with R computed at run time (a residual) becomes the Conv with R as an
/// extra last input: the op adds R into its output in the same pass that applies a later fused
/// activation (`activation(conv + R)`). Only when the Conv output has no other reader and is
/// not a graph output, and R is not that output itself. If R's shape turns out to differ from
/// the Conv output's at run time, the op broadcasts as Add would.
enum FuseResidualAdd {
    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        let producers = g.producers()
        for k in g.nodes.indices {
            guard let add = g.nodes[k], add.isOp("Add"), add.inputs.count == 2, add.outputs.count == 1,
                  add.inputs[0] != add.inputs[1] else { continue }
            for (y, r) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard g.constant(r) == nil, let p = producers[y], let conv = g.nodes[p], conv.isOp("Conv"), conv.outputs.count == 1,
                      conv.inputs.count >= 2, conv.inputs.count <= 3, readers[y] == 1, g.isInternal(y) else { continue }
                var plan = g.plan(of: p) ?? FusedPlan(operators: ["Conv"])
                guard plan.activation == .none, !plan.residual else { continue }
                // R must be computed before the Conv runs: its producer comes earlier.
                if let rp = producers[r], rp > p { continue }
                var fused = conv
                fused.inputs = [conv.inputs[0], conv.inputs[1], conv.inputs.count > 2 ? conv.inputs[2] : "", r]
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
