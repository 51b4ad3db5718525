import MBCore
import MBPolicy

/// Binarized activations (issue 7): a rule's `activations:` becomes attributes of each layer
/// that reads the rule's weight as its W/B input (Conv, Gemm, MatMul); the runtime binarizes
/// that layer's first input at inference time. Attributes (Schemas/mbm-format.md):
///   mb.activations.bits        ints    bit widths, ascending
///   mb.activations.fractions   floats  fraction of entries per width (sum 1)
///   mb.activations.method      string  "middle-out"
///   mb.activations.granularity string  "element" or "group:N"
public enum ActivationAttributes {
    public static let bits = "mb.activations.bits"
    public static let fractions = "mb.activations.fractions"
    public static let method = "mb.activations.method"
    public static let granularity = "mb.activations.granularity"

    static func apply(_ plans: [PolicyCheck.TensorPlan], to graph: IRGraph) -> IRGraph {
        var settings: [String: Policy.ActivationSettings] = [:]
        for p in plans { if let a = p.decision.activations { settings[p.tensor.name] = a } }
        guard !settings.isEmpty else { return graph }
        var out = graph
        for i in out.nodes.indices {
            let n = out.nodes[i]
            guard ["Conv", "Gemm", "MatMul"].contains(n.opType), n.domain.isEmpty, n.inputs.count >= 2,
                  let a = settings[n.inputs[1]] else { continue }
            let used = a.mix.entries.filter { $0.fraction > 0 }
            out.nodes[i].attributes.removeAll { $0.name.hasPrefix("mb.activations.") }
            out.nodes[i].attributes += [
                IRAttribute(name: bits, value: .ints(used.map { Int64($0.bits) })),
                IRAttribute(name: fractions, value: .floats(used.map { Float($0.fraction) })),
                IRAttribute(name: method, value: .string(Array("middle-out".utf8))),
                IRAttribute(name: granularity, value: .string(Array(a.granularity.description.utf8))),
            ]
        }
        return out
    }
}
