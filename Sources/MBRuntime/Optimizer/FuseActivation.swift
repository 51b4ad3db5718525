import MBCore
import MBKernels

/// An activation node right after a Conv, ConvTranspose, Gemm or MatMul whose output only it reads
/// becomes that node's epilogue: Relu, Clip (constant bounds; Relu6), LeakyRelu, HardSigmoid,
/// HardSwish, Sigmoid, Tanh and Swish with alpha 1 (SiLU, also as recognized from
/// `x * Sigmoid(x)`). One activation per node.
enum FuseActivation {
    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        let producers = g.producers()
        for k in g.nodes.indices {
            guard let n = g.nodes[k], n.outputs.count == 1, let x = n.inputs.first, !x.isEmpty,
                  let (act, name) = activation(of: n, &g) else { continue }
            guard let p = producers[x], let producer = g.nodes[p], producer.outputs.count == 1,
                  producer.isOp("Conv") || producer.isOp("ConvTranspose") || producer.isOp("Gemm") || producer.isOp("MatMul"),
                  readers[x] == 1, g.isInternal(x) else { continue }
            var plan = g.plan(of: p) ?? FusedPlan(operators: [producer.opType])
            guard plan.activation == .none else { continue }
            plan.activation = act
            plan.operators.append(name)
            g.renameOutput(of: p, to: n.outputs[0])
            g.setPlan(plan, of: p)
            g.nodes[k] = nil
            readers[x] = 0
            g.rewrites += 1
        }
    }

    /// The activation node `n` computes, and its name for the profile.
    static func activation(of n: IRNode, _ g: inout OptimizerGraph) -> (Activation, String)? {
        guard n.domain.isEmpty || n.domain == "ai.onnx" else { return nil }
        switch n.opType {
        case "Relu": return (.relu, "Relu")
        case "LeakyRelu": return (.leakyRelu(alpha: g.float(n, "alpha", 0.01)), "LeakyRelu")
        case "HardSigmoid": return (.hardSigmoid(alpha: g.float(n, "alpha", 0.2), beta: g.float(n, "beta", 0.5)), "HardSigmoid")
        case "HardSwish": return (.hardSwish, "HardSwish")
        case "Sigmoid": return (.sigmoid, "Sigmoid")
        case "Tanh": return (.tanh, "Tanh")
        case "Swish" where g.float(n, "alpha", 1) == 1: return (.silu, "SiLU")
        case "Clip":
            var lo: Float = -.infinity, hi: Float = .infinity
            if g.opset >= 11 {
                if n.inputs.count > 1, !n.inputs[1].isEmpty { guard let v = g.scalar(n.inputs[1]) else { return nil }; lo = v }
                if n.inputs.count > 2, !n.inputs[2].isEmpty { guard let v = g.scalar(n.inputs[2]) else { return nil }; hi = v }
            } else {
                lo = g.float(n, "min", -Float.greatestFiniteMagnitude)
                hi = g.float(n, "max", Float.greatestFiniteMagnitude)
            }
            return (.clip(min: lo, max: hi), lo == 0 && hi == 6 ? "Relu6" : "Clip")
        default: return nil
        }
    }
}
