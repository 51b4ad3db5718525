import MBCore

/// Nodes none of whose outputs is read (by a node, a subgraph or as a graph output) are
/// removed, last first, so a chain that only fed a removed node goes too. ONNX operators
/// have no side effects, so this never changes an output.
enum RemoveDeadNodes {
    static func run(_ g: inout OptimizerGraph) {
        var readers = g.readers()
        for k in g.nodes.indices.reversed() {
            guard let n = g.nodes[k] else { continue }
            let live = n.outputs.contains { !$0.isEmpty && (readers[$0, default: 0] > 0 || !g.isInternal($0)) }
            if live { continue }
            for i in n.inputs where !i.isEmpty { readers[i, default: 0] -= 1 }
            g.nodes[k] = nil
            g.rewrites += 1
        }
    }
}
