import MBCore

/// Identity and inference-mode Dropout pass their input through: readers read the input
/// instead. When the pass-through is a graph output, the producer writes that name directly
/// (when the input is only read here); otherwise the node stays. Reshape is already a view
/// (no copy), so it is not touched here.
enum RemoveNoOps {
    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        let producers = g.producers()
        var renames: [String: String] = [:]
        for k in g.nodes.indices {
            guard var n = g.nodes[k] else { continue }
            n.inputs = n.inputs.map { renames[$0] ?? $0 }
            g.nodes[k] = n
            guard n.isOp("Identity") || isInferenceDropout(n, &g, readers), n.inputs.count >= 1, !n.inputs[0].isEmpty,
                  let out = n.outputs.first, !out.isEmpty else { continue }
            let src = n.inputs[0]
            if g.isInternal(out) {
                renames[out] = src
                g.nodes[k] = nil
                g.rewrites += 1
            } else if g.graphOutputs.contains(out), g.isInternal(src), readers[src] == 1, let p = producers[src], g.nodes[p] != nil {
                g.renameOutput(of: p, from: src, to: out)
                readers[src] = 0
                g.nodes[k] = nil
                g.rewrites += 1
            }
        }
    }

    /// Dropout whose mask output is unused and whose training_mode input is absent or false.
    static func isInferenceDropout(_ n: IRNode, _ g: inout OptimizerGraph, _ readers: [String: Int]) -> Bool {
        guard n.isOp("Dropout") else { return false }
        if n.outputs.count > 1, !n.outputs[1].isEmpty, readers[n.outputs[1], default: 0] > 0 || !g.isInternal(n.outputs[1]) { return false }
        if n.inputs.count > 2, !n.inputs[2].isEmpty {
            guard let t = g.constant(n.inputs[2]), t.count == 1, t.int64s.first == 0 else { return false }
        }
        return true
    }
}
