import MBCore
import MBKernels

/// Chains of elementwise nodes on one tensor (unary functions, and Add/Sub/Mul/Div with a
/// scalar constant) become one `ElementwiseChain` node that runs every step over a block that
/// stays in L1 before moving on: one pass over memory instead of one per node. Each link's
/// input must have no other reader and not be visible outside. Only chains known to be float
/// (a float scalar constant, or a float-only function such as Sigmoid) are fused, since the
/// chain kernel is float; Relu, Clip or Neg alone could be integer.
enum FuseElementwiseChains {
    static let domain = "mbruntime"
    static let opType = "ElementwiseChain"

    static func run(_ g: inout OptimizerGraph) {
        let readers = g.readers()
        struct Chain { var nodes: [Int]; var steps: [ChainStep]; var operators: [String]; var float: Bool }
        var chains: [Chain] = []
        var chainOf: [String: Int] = [:]  // a chain's current end value → chain index
        for k in g.nodes.indices {
            guard let n = g.nodes[k], n.outputs.count == 1, !n.outputs[0].isEmpty, let (x, step, float) = link(n, &g) else { continue }
            if let c = chainOf[x], readers[x] == 1, g.isInternal(x) {
                chainOf[x] = nil
                chains[c].nodes.append(k)
                chains[c].steps.append(step)
                chains[c].operators.append(n.opType)
                chains[c].float = chains[c].float || float
                chainOf[n.outputs[0]] = c
            } else {
                chains.append(Chain(nodes: [k], steps: [step], operators: [n.opType], float: float))
                chainOf[n.outputs[0]] = chains.count - 1
            }
        }
        for chain in chains where chain.nodes.count >= 2 && chain.float {
            guard let first = g.nodes[chain.nodes[0]], let last = g.nodes[chain.nodes.last!], let (x, _, _) = link(first, &g) else { continue }
            let name = chain.nodes.compactMap { g.nodes[$0]?.name }.filter { !$0.isEmpty }.joined(separator: "+")
            for k in chain.nodes { g.nodes[k] = nil }
            g.nodes[chain.nodes[0]] = IRNode(name: name, opType: opType, domain: domain, inputs: [x], outputs: last.outputs)
            var plan = FusedPlan(operators: chain.operators)
            plan.chain = chain.steps
            g.plans[last.outputs[0]] = plan
            g.rewrites += chain.nodes.count - 1
        }
    }

    /// For a chainable node: its tensor input, its step, and whether it proves the chain float.
    static func link(_ n: IRNode, _ g: inout OptimizerGraph) -> (String, ChainStep, Bool)? {
        guard n.domain.isEmpty || n.domain == "ai.onnx", let x = n.inputs.first, !x.isEmpty else { return nil }
        switch n.opType {
        case "Add", "Sub", "Mul", "Div":
            guard n.inputs.count == 2 else { return nil }
            let op: Elementwise.BinaryOp = ["Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div][n.opType]!
            if let s = g.scalar(n.inputs[1]), g.constant(n.inputs[0]) == nil { return (n.inputs[0], .scalar(op, s, onLeft: false), true) }
            if let s = g.scalar(n.inputs[0]), g.constant(n.inputs[1]) == nil { return (n.inputs[1], .scalar(op, s, onLeft: true), true) }
            return nil
        case "Sigmoid": return n.inputs.count == 1 ? (x, .unary(.activation(.sigmoid)), true) : nil
        case "Tanh": return n.inputs.count == 1 ? (x, .unary(.activation(.tanh)), true) : nil
        case "Exp": return n.inputs.count == 1 ? (x, .unary(.exp), true) : nil
        case "Erf": return n.inputs.count == 1 ? (x, .unary(.erf), true) : nil
        case "HardSwish": return (x, .unary(.activation(.hardSwish)), true)
        case "HardSigmoid": return (x, .unary(.activation(.hardSigmoid(alpha: g.float(n, "alpha", 0.2), beta: g.float(n, "beta", 0.5)))), true)
        case "LeakyRelu": return (x, .unary(.activation(.leakyRelu(alpha: g.float(n, "alpha", 0.01)))), true)
        case "Relu": return n.inputs.count == 1 ? (x, .unary(.activation(.relu)), false) : nil
        default: return nil
        }
    }
}
