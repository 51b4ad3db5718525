import MBCore
import MBKernels

/// The load-time graph optimizer: a fixed list of small passes over the main graph, each a
/// rewrite that keeps what the graph computes (each has its own test against the unoptimized
/// graph). `MBModel(ir:)` runs it for `.onnx` and `.mbm` graphs alike before compilation;
/// `MBModel.Options.optimize = false` skips it.
///
/// Constants are values known at load: initializers (binarized ones are never read, so a
/// binarized weight stays exactly as stored), Constant nodes and folded nodes. Subgraphs (If
/// branches) are left as written, and a value a subgraph reads is never renamed or removed.
enum GraphOptimizer {
    /// The passes, in order: folding first so later passes see constants; BatchNormalization and
    /// bias folding before activation fusion (an epilogue applies after them); dead nodes last.
    static let passes: [Pass] = [
        ("fold-constants", FoldConstants.run),
        ("remove-no-ops", RemoveNoOps.run),
        ("fold-batch-norm", FoldBatchNorm.run),
        ("recognize-activations", RecognizeActivations.run),
        ("remove-dead-nodes", RemoveDeadNodes.run),
        ("fuse-conv-bias", FuseConvBias.run),
        ("fuse-residual-add", FuseResidualAdd.run),
        ("fuse-activation", FuseActivation.run),
        ("fuse-elementwise-chains", FuseElementwiseChains.run),
        ("remove-dead-nodes", RemoveDeadNodes.run),
    ]

    typealias Pass = (name: String, run: @Sendable (inout OptimizerGraph) -> Void)

    struct Result {
        var graph: IRGraph
        var plans: [String: FusedPlan]
        /// Constants the passes read or made, by name, for the compiler to use as they are.
        var constants: [String: MBTensor]
        var report: [String: Int]
    }

    static func optimize(_ graph: IRGraph, compiler: GraphCompiler, passes: [Pass] = passes) -> Result {
        var g = OptimizerGraph(graph, compiler: compiler)
        for pass in passes {
            let before = g.rewrites
            pass.run(&g)
            if g.rewrites > before { g.report[pass.name, default: 0] += g.rewrites - before }
        }
        var out = graph
        out.nodes = g.nodes.compactMap { $0 }
        return Result(graph: out, plans: g.plans, constants: g.known, report: g.report)
    }
}

/// The graph as passes see it: nodes (nil once removed) in topological order, what reads each
/// value, and the constants known at load.
struct OptimizerGraph {
    var nodes: [IRNode?]
    let graphOutputs: Set<String>
    let graphInputs: Set<String>
    /// Values read by a subgraph (by name from an enclosing scope): never renamed or removed.
    let subgraphReads: Set<String>
    let initializers: [String: IRTensor]
    var known: [String: MBTensor] = [:]
    var plans: [String: FusedPlan] = [:]
    var report: [String: Int] = [:]
    var rewrites = 0
    let compiler: GraphCompiler

    init(_ g: IRGraph, compiler: GraphCompiler) {
        nodes = g.nodes
        graphOutputs = Set(g.outputs.map(\.name))
        graphInputs = Set(g.inputs.map(\.name))
        var inits: [String: IRTensor] = [:]
        for c in g.constants { inits[c.name] = c }
        initializers = inits
        var reads = Set<String>()
        func walk(_ sub: IRGraph) {
            for n in sub.nodes {
                reads.formUnion(n.inputs)
                for a in n.attributes {
                    if case .graph(let s) = a.value { walk(s) }
                    if case .graphs(let ss) = a.value { ss.forEach(walk) }
                }
            }
            reads.formUnion(sub.outputs.map(\.name))
        }
        for n in g.nodes {
            for a in n.attributes {
                if case .graph(let s) = a.value { walk(s) }
                if case .graphs(let ss) = a.value { ss.forEach(walk) }
            }
        }
        subgraphReads = reads
        self.compiler = compiler
    }

    /// The value of `name` when it is known at load (a float or integer constant, not binarized).
    mutating func constant(_ name: String) -> MBTensor? {
        if name.isEmpty { return nil }
        if let t = known[name] { return t }
        guard let ir = initializers[name] else { return nil }
        switch ir.storage {
        case .binarized, .quantized: return nil
        case .dense, .strings: break
        }
        guard let t = try? TensorConversion.tensor(from: ir, maxBytes: compiler.options.maxTensorBytes) else { return nil }
        known[name] = t
        return t
    }

    /// A constant holding one float (any rank up to 1: a larger rank could broadcast a result up).
    mutating func scalar(_ name: String) -> Float? {
        guard let t = constant(name), t.elementType == .float, t.count == 1, t.rank <= 1 else { return nil }
        return t.pointer(Float.self)[0]
    }

    /// How many node inputs read each value (subgraph reads and graph outputs not included).
    func readers() -> [String: Int] {
        var r: [String: Int] = [:]
        for n in nodes { if let n { for i in n.inputs where !i.isEmpty { r[i, default: 0] += 1 } } }
        return r
    }

    /// The node index producing each value.
    func producers() -> [String: Int] {
        var p: [String: Int] = [:]
        for (k, n) in nodes.enumerated() { if let n { for o in n.outputs where !o.isEmpty { p[o] = k } } }
        return p
    }

    /// Whether `name` may disappear or be renamed: not a graph input or output, not read by a subgraph.
    func isInternal(_ name: String) -> Bool {
        !graphOutputs.contains(name) && !graphInputs.contains(name) && !subgraphReads.contains(name)
    }

    /// Node `k` now writes `newName` where it wrote its output 0 (its plan moves with it).
    /// Renames output `old` of node `k` (its first output when nil) to `newName`.
    mutating func renameOutput(of k: Int, from old: String? = nil, to newName: String) {
        guard let outputs = nodes[k]?.outputs else { return }
        let index: Int? = if let old { outputs.firstIndex(of: old) } else { outputs.isEmpty ? nil : 0 }
        guard let i = index else { return }
        let old = outputs[i]
        nodes[k]!.outputs[i] = newName
        if let p = plans.removeValue(forKey: old) { plans[newName] = p }
    }

    func plan(of k: Int) -> FusedPlan? { nodes[k]?.outputs.first.flatMap { plans[$0] } }

    mutating func setPlan(_ p: FusedPlan, of k: Int) { if let o = nodes[k]?.outputs.first { plans[o] = p } }

    /// A float attribute of node `k` or `d`.
    func float(_ n: IRNode, _ name: String, _ d: Float) -> Float {
        switch n.attribute(name) {
        case .float(let x)?: return x
        case .int(let x)?: return Float(x)
        default: return d
        }
    }

    func int(_ n: IRNode, _ name: String, _ d: Int64) -> Int64 {
        if case .int(let x)? = n.attribute(name) { return x }
        return d
    }

    var opset: Int { compiler.opset }
}

extension IRNode {
    /// A default-domain operator of this type.
    func isOp(_ type: String) -> Bool { opType == type && (domain.isEmpty || domain == "ai.onnx") }
}
