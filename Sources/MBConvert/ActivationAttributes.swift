import MBCore
import MBFormat
import MBPolicy

/// Binarized activations: a rule's `activations:` becomes attributes (MBFormat's
/// `ActivationAttributes`) of each layer that reads the rule's weight as its W/B input (Conv,
/// Gemm, MatMul); the runtime binarizes that layer's first input at inference time.
extension ActivationAttributes {
    static func apply(_ plans: [ConversionPlan], to graph: IRGraph) -> IRGraph {
        var settings: [String: ActivationSpec] = [:]
        for p in plans { if let a = p.decision.activations { settings[p.tensor.name] = a } }
        guard !settings.isEmpty else { return graph }
        var out = graph
        for i in out.nodes.indices {
            let n = out.nodes[i]
            guard WeightedOp(n)?.takesBinarizedInputs == true, n.inputs.count >= 2,
                  let a = settings[n.inputs[1]] else { continue }
            out.nodes[i].attributes.removeAll { $0.name.hasPrefix(prefix) }
            out.nodes[i].attributes += encode(a)
        }
        return out
    }
}
