import MBCore

/// Graph rewrites done once at load: a Conv whose only reader is a Relu absorbs it (the
/// kernel applies the Relu in its epilogue), saving a pass over the activation.
enum Fusion {
    /// Internal attribute a fused Conv carries (never written to files).
    static let activationAttribute = "__mbruntime_fused_activation"

    static func fuseConvRelu(_ g: IRGraph) -> IRGraph {
        var readers: [String: Int] = [:]
        func countReads(_ graph: IRGraph) {
            for n in graph.nodes {
                for i in n.inputs where !i.isEmpty { readers[i, default: 0] += 1 }
                for a in n.attributes {
                    if case .graph(let sub) = a.value { countReads(sub); for o in sub.outputs { readers[o.name, default: 0] += 1 } }
                    if case .graphs(let subs) = a.value { for sub in subs { countReads(sub); for o in sub.outputs { readers[o.name, default: 0] += 1 } } }
                }
            }
        }
        countReads(g)
        let graphOutputs = Set(g.outputs.map(\.name))
        var producerIndex: [String: Int] = [:]
        var nodes = g.nodes
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() {
            for o in n.outputs { producerIndex[o] = i }
            guard n.opType == "Relu", n.domain.isEmpty, n.inputs.count == 1, n.outputs.count == 1,
                  let p = producerIndex[n.inputs[0]], !removed.contains(p) else { continue }
            let conv = nodes[p]
            guard conv.opType == "Conv", conv.domain.isEmpty, conv.outputs.count == 1, conv.attribute(activationAttribute) == nil,
                  readers[n.inputs[0]] == 1, !graphOutputs.contains(n.inputs[0]) else { continue }
            nodes[p].outputs = n.outputs
            nodes[p].attributes.append(IRAttribute(name: activationAttribute, value: .string(Array("Relu".utf8))))
            producerIndex[n.outputs[0]] = p
            removed.insert(i)
        }
        var out = g
        out.nodes = nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return out
    }
}
