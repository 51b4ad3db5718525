import MBCore

/// Constant subgraphs that produce weights, e.g. `ConstantOfShape` with a constant shape input
/// (the light_* models in ../shared/models make every weight that way), or the
/// `DequantizeLinear` of an integer weight in a quantized (QDQ) model: folded, its float output
/// is the weight a policy binarizes (MBCore's `Dequantization`, the runtime's own arithmetic). Planning is separate
/// from evaluation so that a dry run (`policy check`) learns a folded tensor's shape without
/// allocating its values.
public enum ConstantFolding {
    /// A node whose output can be computed now.
    public struct Plan: Sendable {
        public var node: IRNode
        public var outputName: String
        public var elementType: ElementType
        public var shape: [Int]
        public var elementCount: Int
    }

    /// Ops folded here. Each needs only constant inputs.
    public static let foldableOps: Set<String> = ["ConstantOfShape", "Identity", "DequantizeLinear"]

    /// What folding may allocate. Folded tensors are materialized in memory, so a constant
    /// subgraph asking for more is refused with an error naming the node, before any allocation.
    public struct Limits: Sendable {
        /// Largest folded tensor in bytes (default 4 GiB).
        public var maxBytes: Int
        public init(maxBytes: Int = ConstantFolding.maxFoldedBytes) { self.maxBytes = maxBytes }
    }

    /// The default of `Limits.maxBytes`.
    public static let maxFoldedBytes = 1 << 32

    /// The plan for `node` when every input it reads is in `constants` (or itself planned), else
    /// nil. Throws when the node is foldable but its output would be invalid or over `limits`.
    public static func plan(
        _ node: IRNode, constants: [String: IRTensor], planned: [String: Plan] = [:], limits: Limits = Limits()
    ) throws(ConversionError) -> Plan? {
        guard node.domain.isEmpty, node.outputs.count == 1, !node.outputs[0].isEmpty else { return nil }
        let label = node.name.isEmpty ? node.outputs[0] : node.name
        switch node.opType {
        case "ConstantOfShape":
            guard node.inputs.count == 1, let shapeTensor = constants[node.inputs[0]],
                  shapeTensor.elementType == .int64, shapeTensor.shape.count == 1,
                  let dims = int64Values(shapeTensor) else { return nil }
            let type: ElementType
            if case .tensor(let v)? = node.attribute("value") { type = v.elementType } else { type = .float }
            guard type != .string else { return nil }
            if let d = dims.first(where: { $0 < 0 }) {
                throw ConversionError(node: label, "ConstantOfShape shape \(describeShape(dims)) has a negative dimension \(d)")
            }
            guard let count = elementCount(of: dims), let bytes = type.rawByteCount(elements: count) else {
                throw ConversionError(node: label, "ConstantOfShape shape \(describeShape(dims)) has more elements than a 64-bit count can hold")
            }
            guard bytes <= limits.maxBytes else {
                throw ConversionError(node: label, "ConstantOfShape shape \(describeShape(dims)) needs \(bytes) bytes of \(type.name), more than the folding limit of \(limits.maxBytes) bytes (ConstantFolding.Limits.maxBytes)")
            }
            return Plan(node: node, outputName: node.outputs[0], elementType: type, shape: dims.map { Int($0) }, elementCount: count)
        case "Identity":
            guard node.inputs.count == 1 else { return nil }
            if let c = constants[node.inputs[0]] {
                return Plan(node: node, outputName: node.outputs[0], elementType: c.elementType, shape: c.shape, elementCount: c.elementCount)
            }
            if let p = planned[node.inputs[0]] {
                return Plan(node: node, outputName: node.outputs[0], elementType: p.elementType, shape: p.shape, elementCount: p.elementCount)
            }
            return nil
        case "DequantizeLinear":
            // Integer data with a float scale, all constant; the output has the scale's type.
            guard (2...3).contains(node.inputs.count), let x = constants[node.inputs[0]], let scale = constants[node.inputs[1]],
                  node.inputs.count == 2 || node.inputs[2].isEmpty || constants[node.inputs[2]] != nil,
                  Dequantization.integerValueTypes.contains(x.elementType), [.float, .float16, .bfloat16].contains(scale.elementType) else { return nil }
            return Plan(node: node, outputName: node.outputs[0], elementType: scale.elementType, shape: x.shape, elementCount: x.elementCount)
        default:
            return nil
        }
    }

    /// Computes a planned tensor. `lookup` finds input constants (already folded ones included).
    public static func evaluate(_ plan: Plan, lookup: (String) throws -> IRTensor?) throws -> IRTensor {
        let name = plan.node.name.isEmpty ? plan.outputName : plan.node.name
        switch plan.node.opType {
        case "ConstantOfShape":
            // The fill value: one element of the output's type (ONNX default: float 0).
            var element = [UInt8](repeating: 0, count: plan.elementType.rawByteCount(elements: 1) ?? 4)
            if case .tensor(let v)? = plan.node.attribute("value") {
                guard v.elementCount == 1, case .dense(let bytes) = v.storage, bytes.count == element.count else {
                    throw ConversionError(node: name, "ConstantOfShape 'value' must hold exactly one element")
                }
                element = bytes.withBytes { Array($0) }
            }
            // The plan checked the size against the limit; fill by doubling copies.
            let total = element.count * plan.elementCount
            let out = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 64)
            if total > 0 {
                element.withUnsafeBytes { out.copyMemory(from: $0.baseAddress!, byteCount: min($0.count, total)) }
                var filled = min(element.count, total)
                while filled < total {
                    let n = min(filled, total - filled)
                    (out + filled).copyMemory(from: out, byteCount: n)
                    filled += n
                }
            }
            let storage = ByteStorage(base: UnsafeRawPointer(out), count: total, owner: .swift)
            return IRTensor(name: plan.outputName, elementType: plan.elementType, shape: plan.shape, storage: .dense(ByteSlice(storage: storage)))
        case "Identity":
            guard var t = try lookup(plan.node.inputs[0]) else { throw ConversionError(node: name, "input '\(plan.node.inputs[0])' is not constant") }
            t.name = plan.outputName
            return t
        case "DequantizeLinear":
            let inputs = plan.node.inputs
            guard let x = try lookup(inputs[0]), let scale = try lookup(inputs[1]) else { throw ConversionError(node: name, "x and x_scale must be constant") }
            let zero = inputs.count > 2 && !inputs[2].isEmpty ? try lookup(inputs[2]) : nil
            func int(_ key: String, _ d: Int) -> Int { if case .int(let v)? = plan.node.attribute(key) { return Int(truncatingIfNeeded: v) }; return d }
            do {
                return try Dequantization.dequantize(x, scale: scale, zero: zero, axis: int("axis", 1), blockSize: int("block_size", 0), name: plan.outputName)
            } catch {
                throw ConversionError(node: name, "DequantizeLinear: \(error.description)")
            }
        default:
            throw ConversionError(node: name, "\(plan.node.opType) cannot be folded")
        }
    }

    /// Plans every foldable node of `graph` in order (a fold may feed the next).
    public static func plans(for graph: IRGraph, limits: Limits = Limits()) throws(ConversionError) -> [String: Plan] {
        let constants = Dictionary(graph.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var planned: [String: Plan] = [:]
        for node in graph.nodes where foldableOps.contains(node.opType) {
            if let p = try plan(node, constants: constants, planned: planned, limits: limits) { planned[p.outputName] = p }
        }
        return planned
    }

    /// `graph` with every foldable node replaced by the constant it computes (what the
    /// conversion pipeline stores), except the nodes whose output is in `keeping` (and folds that
    /// read them). Inputs that only fed folded nodes stay; pruning is separate.
    public static func fold(_ graph: IRGraph, limits: Limits = Limits(), keeping: Set<String> = []) throws -> IRGraph {
        let planned = try plans(for: graph, limits: limits)
        guard !planned.isEmpty else { return graph }
        var out = graph
        var byName = Dictionary(graph.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        out.nodes = []
        for node in graph.nodes {
            if let output = node.outputs.first, let p = planned[output], p.node.outputs == node.outputs, !keeping.contains(output),
               node.inputs.allSatisfy({ $0.isEmpty || byName[$0] != nil }) {
                let t = try evaluate(p) { byName[$0] }
                byName[t.name] = t
                out.constants.append(t)
            } else {
                out.nodes.append(node)
            }
        }
        return out
    }

    static func int64Values(_ t: IRTensor) -> [Int64]? {
        guard t.elementType == .int64, case .dense(let bytes) = t.storage, bytes.count == t.elementCount * 8 else { return nil }
        return bytes.withBytes { raw in
            (0..<t.elementCount).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        }
    }
}
