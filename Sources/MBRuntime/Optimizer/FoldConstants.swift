import MBCore

/// Constant folding: a node whose inputs are all known at load (Constant nodes included) is
/// evaluated once through the op table (`GraphCompiler.evaluate`, the same code and rule as the
/// compiler's own folding) and replaced by its values. Control flow and nodes with subgraphs
/// are left alone; so is a node that fails (the error surfaces at run time, as written).
enum FoldConstants {
    static func run(_ g: inout OptimizerGraph) {
        for k in g.nodes.indices {
            guard let n = g.nodes[k] else { continue }
            var values: [MBTensor?] = []
            var allKnown = true
            for i in n.inputs {
                if i.isEmpty { values.append(nil); continue }
                guard let v = g.constant(i) else { allKnown = false; break }
                values.append(v)
            }
            guard allKnown else { continue }
            // Nodes without inputs other than Constant (random generators) are left to the compiler.
            if n.inputs.isEmpty && !n.isOp("Constant") { continue }
            guard let outs = g.compiler.evaluate(n, inputs: values) else { continue }
            for (j, o) in n.outputs.enumerated() where !o.isEmpty { g.known[o] = outs[j] }
            g.nodes[k] = nil
            g.rewrites += 1
        }
    }
}
