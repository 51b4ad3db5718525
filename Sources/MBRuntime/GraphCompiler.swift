import MBCore
import MBKernels

/// Names visible in a graph: its own values, then those of the graphs around it.
final class Scope {
    var names: [String: Int] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Int? { names[name] ?? parent?.lookup(name) }
}

/// Turns IR graphs into `CompiledGraph`s: resolves names to slots, compiles each node through
/// the op table, folds nodes whose inputs are all constants, and computes buffer lifetimes.
final class GraphCompiler {
    let opset: Int
    let opsets: [IROpset]
    var slotCount = 0
    var folded = 0
    /// Values known at load time, by slot (constants and folded results).
    var constantValues: [Int: MBTensor] = [:]
    /// Constants whose element type the runtime cannot hold: the error if a node uses them.
    var poisoned: [Int: (kind: MBRuntimeError.Kind, message: String)] = [:]
    /// Packed mode: binarized constants not expanded (yet), by slot. A node that runs one from
    /// its bit planes claims it; any other reader gets it expanded.
    var packedConstants: [Int: (name: String, tensor: PackedTensor)] = [:]
    var claimed = Set<Int>()
    /// Nodes running from bit planes, and the bytes their planes hold.
    var packedNodes: [String] = []
    var packedBytes = 0
    /// Binarized weights of Conv/Gemm/MatMul with float inputs (packed and auto modes).
    var weightChoices: [WeightChoice] = []
    /// Element types the model declares for graph inputs and constants, by name (a float16
    /// value is held as float at run time; CastLike needs to know it was float16).
    var declaredTypes: [String: ElementType] = [:]

    let options: MBModel.Options
    /// Subgraph nesting of the graph being compiled (the main graph is 1).
    var depth = 0

    init(opset: Int, opsets: [IROpset], options: MBModel.Options = .init()) {
        self.opset = opset
        self.opsets = opsets
        self.options = options
    }

    /// Expands a packed constant for readers that need floats.
    func materialize(_ slot: Int) {
        guard constantValues[slot] == nil, let p = packedConstants[slot] else { return }
        do {
            constantValues[slot] = try TensorConversion.tensor(from: IRTensor(name: p.name, elementType: .float, shape: p.tensor.shape, storage: .binarized(p.tensor)),
                                                               maxBytes: options.maxTensorBytes)
        } catch {
            poisoned[slot] = (error.kind, "constant '\(p.name)': \(error.message)")
        }
    }

    /// Bytes held by the constants a compiled graph keeps, plus bit planes and weight choices.
    func residentConstantBytes(_ g: CompiledGraph) -> Int {
        g.constants.reduce(0) { $0 + $1.value.count * $1.value.elementType.runtimeSize } + packedBytes
            + weightChoices.reduce(0) { $0 + $1.residentBytes }
    }

    /// Auto mode: each weight in its fastest measured form: lookup tables (the GEMV of a
    /// Gemm/MatMul, the lookup-table convolution of a Conv), compact (a batch-1 Gemm/MatMul can
    /// be faster: its float weights stream from memory once per run) or expanded; then, while the
    /// weights exceed `maxWeightBytes`, the one whose compact form costs the least measured time
    /// per byte saved goes compact. Packed mode keeps every weight compact.
    func resolveWeightChoices(_ g: CompiledGraph) throws(MBRuntimeError) {
        var lut = weightChoices.map { (options.weights == .auto && $0.lutMeasuredFastest) || (options.weights == .packed && $0.lutConv8 != nil) }
        var packed = weightChoices.map { options.weights == .packed || $0.packedMeasuredFaster }
        var compactCodes = [Bool](repeating: false, count: weightChoices.count)
        if options.weights == .auto, let budget = options.maxWeightBytes {
            let others = residentConstantBytes(g) - weightChoices.reduce(0) { $0 + $1.residentBytes }
            func bytes(_ i: Int) -> Int {
                let c = weightChoices[i]
                if lut[i], compactCodes[i], let b = c.lut8CompactBytes { return b }
                return lut[i] ? c.lutBytes ?? c.expandedBytes : packed[i] ? c.compactBytes : c.expandedBytes
            }
            var total = others + weightChoices.indices.reduce(0) { $0 + bytes($1) }
            // First the int8 tables' compact codes: they keep the tables' speed (less the per-run
            // expansion) at about the file's bytes.
            for i in weightChoices.indices where total > budget && lut[i] {
                guard let b = weightChoices[i].lut8CompactBytes, b < bytes(i) else { continue }
                total -= bytes(i) - b
                compactCodes[i] = true
            }
            let order = weightChoices.indices.filter { !packed[$0] || lut[$0] }
                .map { (i: $0, cost: weightChoices[$0].costPerByteSaved(fromLut: lut[$0])) }.sorted { $0.cost < $1.cost }.map(\.i)
            for i in order where total > budget && bytes(i) > weightChoices[i].compactBytes {
                let before = bytes(i)
                packed[i] = true
                lut[i] = false
                total -= before - weightChoices[i].compactBytes
            }
        }
        for (i, choice) in weightChoices.enumerated() {
            if compactCodes[i] && lut[i] { choice.compactLutCodes() }
            do {
                try choice.settle(packed: packed[i], lut: lut[i], maxTensorBytes: options.maxTensorBytes)
            } catch {
                throw MBRuntimeError(.limitExceeded, node: choice.node, opType: "", "weight '\(choice.weight)': \(error)")
            }
        }
        let expanded = Set(weightChoices.filter { !$0.isPacked }.map(\.node))
        packedNodes.removeAll { expanded.contains($0) }
    }

    func newSlot() -> Int {
        slotCount += 1
        return slotCount - 1
    }

    /// Fused-node plans of the optimized main graph, by a node's first output.
    var plans: [String: FusedPlan] = [:]
    /// Values the optimizer already knows for the main graph (converted or folded constants), by name.
    var presetConstants: [String: MBTensor] = [:]

    /// Runs `run` at load on known inputs; nil when the node cannot be evaluated here.
    func foldRun(_ run: OpRun, _ inputs: [MBTensor?]) -> [MBTensor]? {
        let ctx = ExecutionContext(slotCount: 0, threads: 1, variant: .fast, maxTensorBytes: options.maxTensorBytes,
                                   limitName: "MBModel.Options.maxTensorBytes")
        return try? run(Inputs(inputs), ctx)
    }

    /// Evaluates one node whose inputs are all known through the op table (the optimizer's
    /// constant folding: the same rule and code as the folding in `compile`). nil when the node
    /// is control flow, has subgraphs, is not supported, or fails.
    func evaluate(_ node: IRNode, inputs: [MBTensor?]) -> [MBTensor]? {
        guard let spec = OpTable.lookup(node.domain, node.opType), !OpTable.neverFold.contains(node.opType),
              !node.attributes.contains(where: { if case .graph = $0.value { return true }; if case .graphs = $0.value { return true }; return false })
        else { return nil }
        // Temporary slots, given back afterwards (they must not grow every session's slot space).
        let firstSlot = slotCount
        defer {
            for s in firstSlot..<slotCount { constantValues[s] = nil }
            slotCount = firstSlot
        }
        let scope = Scope(parent: nil)
        var slots: [Int] = []
        for (k, v) in inputs.enumerated() {
            guard let v else { slots.append(-1); continue }
            let s = newSlot()
            constantValues[s] = v
            scope.names[node.inputs[k]] = s
            slots.append(s)
        }
        let context = NodeContext(node: node, name: node.name, opset: opset, compiler: self, scope: scope, inputSlots: slots)
        guard let run = try? spec(context), let outs = foldRun(run, inputs), outs.count >= node.outputs.count else { return nil }
        return outs
    }

    func compile(_ g: IRGraph, parent: Scope?, place: String) throws(MBRuntimeError) -> CompiledGraph {
        depth += 1
        defer { depth -= 1 }
        guard depth <= options.maxGraphDepth else {
            throw MBRuntimeError(.limitExceeded, "\(place): subgraphs nested deeper than \(options.maxGraphDepth) levels (MBModel.Options.maxGraphDepth)")
        }
        let scope = Scope(parent: parent)
        var owned: [Int] = []
        func define(_ name: String) -> Int {
            let s = newSlot()
            scope.names[name] = s
            owned.append(s)
            return s
        }
        var inputSlots: [Int] = []
        for i in g.inputs {
            // String inputs are held as `MBValue.strings`; only Equal and Identity read them.
            if let t = i.elementType, t != .string, TensorConversion.runtimeType(of: t) == nil {
                throw MBRuntimeError(.unsupportedOperator, "\(place) input '\(i.name)': element type \(t.name) is not supported (float, float16, bfloat16, double, float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0, float4e2m1, int64, uint64, int32, uint32, int16, uint16, int8, uint8, int4, uint4, int2, uint2, bool)")
            }
            inputSlots.append(define(i.name))
            if let t = i.elementType { declaredTypes[i.name] = t }
        }
        let preset = depth == 1 ? presetConstants : [:]
        for c in g.constants {
            let s = define(c.name)
            declaredTypes[c.name] = c.elementType
            if let v = preset[c.name] { constantValues[s] = v; continue }
            if options.weights != .expanded, case .binarized(let p) = c.storage {
                packedConstants[s] = (c.name, p)
                continue
            }
            do {
                constantValues[s] = try TensorConversion.tensor(from: c, maxBytes: options.maxTensorBytes)
            } catch {
                poisoned[s] = (error.kind, "constant '\(c.name)': \(error.message)")
            }
        }
        let initializerNames = Set(g.constants.map(\.name))
        for (name, value) in preset.sorted(by: { $0.key < $1.key }) where !initializerNames.contains(name) {
            constantValues[define(name)] = value
        }
        let plans = depth == 1 ? self.plans : [:]
        var steps: [Step] = []
        var stepCaptures: [Set<Int>] = []
        var captures = Set<Int>()
        for (index, node) in g.nodes.enumerated() {
            let name = node.name.isEmpty ? "#\(index)" : node.name
            func fail(_ kind: MBRuntimeError.Kind, _ message: String) -> MBRuntimeError {
                MBRuntimeError(kind, node: name, opType: node.opType, message)
            }
            /// A compile function's failure, naming the node (a bad attribute unless it says otherwise).
            func compileError(_ error: any Error) -> MBRuntimeError {
                switch error {
                case let e as OpError: return fail(e.kind, e.message)
                case let e as MBRuntimeError: return e
                default: return fail(.invalidAttribute, "\(error)")
                }
            }
            var inSlots: [Int] = []
            for input in node.inputs {
                if input.isEmpty { inSlots.append(-1); continue }
                guard let s = scope.lookup(input) else { throw fail(.invalidGraph, "input '\(input)' is not defined by any earlier node, input or constant") }
                if let why = poisoned[s] { throw fail(why.kind, why.message) }
                inSlots.append(s)
            }
            let internalSpec = depth == 1 && node.domain == FuseElementwiseChains.domain ? FloatElementwise.internalTable[node.opType] : nil
            let tensorSpec = internalSpec ?? OpTable.lookup(node.domain, node.opType)
            // Nodes that make or read sequences and optionals run as value steps; one that also
            // has a tensor form (Identity, OptionalGetElement...) keeps it when its inputs are
            // constants (tensors), so it still folds.
            let readsStrings = node.inputs.contains { declaredTypes[$0] == .string }
            if let valueSpec = OpTable.valueLookup(node.domain, node.opType),
               tensorSpec == nil || !inSlots.allSatisfy({ $0 < 0 || constantValues[$0] != nil }),
               !OpTable.stringForms.contains(node.opType) || readsStrings {
                let context = NodeContext(node: node, name: name, opset: opset, compiler: self, scope: scope, inputSlots: inSlots)
                let valueRun: ValueRun
                do {
                    valueRun = try valueSpec(context)
                } catch {
                    throw compileError(error)
                }
                for s in inSlots where s >= 0 && packedConstants[s] != nil { materialize(s) }
                let outSlots = node.outputs.map { $0.isEmpty ? -1 : define($0) }
                for (k, t) in TypePropagation.outputTypes(of: node, inputs: node.inputs.map { declaredTypes[$0] }).enumerated() where k < node.outputs.count && !node.outputs[k].isEmpty {
                    if let t { declaredTypes[node.outputs[k]] = t }
                }
                steps.append(Step(name: name, opType: node.opType, inputs: inSlots, outputs: outSlots, run: { _, _ in [] }, valueRun: valueRun))
                stepCaptures.append(context.captured.value)
                continue
            }
            guard let spec = tensorSpec else {
                throw fail(.unsupportedOperator, "operator \(node.opType) (domain '\(node.domain)') is not supported")
            }
            let plan = node.outputs.first.flatMap { plans[$0] }
            let context = NodeContext(node: node, name: name, opset: opset, compiler: self, scope: scope, inputSlots: inSlots, plan: plan)
            claimed.removeAll()
            let run: OpRun
            do {
                run = try spec(context)
            } catch {
                throw compileError(error)
            }
            // Packed constants this node did not run from bit planes are expanded for it.
            for s in inSlots where s >= 0 && packedConstants[s] != nil && !claimed.contains(s) { materialize(s) }
            if !claimed.isEmpty { packedNodes.append(name) }
            let outSlots = node.outputs.map { $0.isEmpty ? -1 : define($0) }
            for (k, t) in TypePropagation.outputTypes(of: node, inputs: node.inputs.map { declaredTypes[$0] }).enumerated() where k < node.outputs.count && !node.outputs[k].isEmpty {
                if let t { declaredTypes[node.outputs[k]] = t }
            }
            // Fold nodes whose inputs are all known now (not control flow: its branches may read outer values).
            let inputsKnown = inSlots.allSatisfy { $0 < 0 || constantValues[$0] != nil }
            if inputsKnown && context.captured.value.isEmpty && !OpTable.neverFold.contains(node.opType) {
                if let outs = foldRun(run, inSlots.map { $0 < 0 ? nil : constantValues[$0] }), outs.count >= outSlots.count {
                    for (i, s) in outSlots.enumerated() where s >= 0 { constantValues[s] = outs[i] }
                    folded += 1
                    continue
                }
            }
            steps.append(Step(name: name, opType: plan?.label ?? node.opType, inputs: inSlots, outputs: outSlots, run: run))
            stepCaptures.append(context.captured.value)
        }
        var outputSlots: [Int] = []
        for o in g.outputs {
            if let s = scope.lookup(o.name) { materialize(s) }
            guard let s = scope.lookup(o.name) else {
                throw MBRuntimeError(.invalidGraph, "\(place) output '\(o.name)' is not produced by any node, input or constant")
            }
            if let why = poisoned[s] { throw MBRuntimeError(why.kind, "\(place) output: \(why.message)") }
            outputSlots.append(s)
        }
        // Lifetimes: a slot this graph owns dies after the last step that reads it (a step
        // reads what its inputs name and what its subgraphs capture); outputs never die here.
        let ownedSet = Set(owned)
        var lastUse: [Int: Int] = [:]
        for (i, step) in steps.enumerated() {
            for s in step.inputs where s >= 0 { lastUse[s] = i }
            for s in step.outputs where s >= 0 && lastUse[s] == nil { lastUse[s] = i }
        }
        for (i, caps) in stepCaptures.enumerated() { for s in caps { lastUse[s] = max(lastUse[s] ?? i, i) } }
        let keep = Set(outputSlots)
        for (s, i) in lastUse where ownedSet.contains(s) && !keep.contains(s) { steps[i].release.append(s) }
        // An input whose value dies at a step may be overwritten by that step's output (checked
        // again at run time: only when the step holds the buffer's one reference). Never graph
        // inputs (the caller's tensors), constants, or values a subgraph of the step reads.
        let inputSet = Set(inputSlots)
        for i in steps.indices where stepCaptures[i].isEmpty {
            let dying = Set(steps[i].release)
            steps[i].donatable = steps[i].inputs.indices.filter { j in
                let s = steps[i].inputs[j]
                return s >= 0 && dying.contains(s) && !inputSet.contains(s) && constantValues[s] == nil && packedConstants[s] == nil
            }
        }
        ConcatPlacement.plan(&steps, captures: stepCaptures, keep: keep)
        // What this graph reads from enclosing scopes.
        var used = Set<Int>()
        for (i, step) in steps.enumerated() { used.formUnion(step.inputs.filter { $0 >= 0 }); used.formUnion(stepCaptures[i]) }
        used.formUnion(outputSlots)
        captures.formUnion(used.subtracting(ownedSet))
        let constants = used.intersection(ownedSet).compactMap { s in constantValues[s].map { (slot: s, value: $0) } }
        return CompiledGraph(inputSlots: inputSlots, outputSlots: outputSlots, outputNames: g.outputs.map(\.name),
                             constants: constants.sorted { $0.slot < $1.slot }, steps: steps, captures: captures, owned: owned)
    }
}
