import Dispatch
import MBCore
import MBKernels

/// What a node runs: its inputs (nil for omitted optional ones) to its outputs.
typealias OpRun = @Sendable (Inputs, ExecutionContext) throws -> [MBTensor]

/// What a node that makes or reads sequences and optionals runs: values of any kind (nil for an
/// omitted input) to its outputs.
typealias ValueRun = @Sendable ([MBValue?], ExecutionContext) throws -> [MBValue]

/// A node's input values at run time.
struct Inputs {
    let values: [MBTensor?]
    /// Per input: its buffer may be overwritten by this node's output (the value dies here and
    /// nothing else references the buffer). Empty when no input is.
    let reusable: [Bool]
    init(_ values: [MBTensor?], reusable: [Bool] = []) {
        self.values = values
        self.reusable = reusable
    }

    /// Input `i`'s buffer when this node may write a `bytes`-byte output over it.
    func reusableStorage(_ i: Int, bytes: Int) -> TensorStorage? {
        guard i < reusable.count, reusable[i], let t = values[i], t.storage.byteCount == bytes else { return nil }
        return t.storage
    }

    var count: Int { values.count }

    /// Input `i`, or nil when it is omitted or past the end.
    subscript(_ i: Int) -> MBTensor? { i < values.count ? values[i] : nil }

    func required(_ i: Int, _ what: String = "") throws -> MBTensor {
        guard let t = self[i] else { throw OpError("input \(i)\(what.isEmpty ? "" : " (\(what))") is required") }
        return t
    }

    /// Input `i` as a float tensor.
    func float(_ i: Int, _ what: String = "") throws -> MBTensor {
        let t = try required(i, what)
        // An integer or bool tensor where the operator computes in float is a form the runtime
        // does not implement (the model may be valid: ONNX allows ints for many of these).
        guard t.elementType == .float else {
            throw OpError("input \(i)\(what.isEmpty ? "" : " (\(what))") must be float, got \(t.elementType.name)", kind: .unsupportedOperator)
        }
        return t
    }
}

/// A mutable set shared between a node's compile step and the compiler.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// A node at load time: its attributes (type-checked), opset, constant inputs and subgraphs.
struct NodeContext {
    let node: IRNode
    let name: String
    let opset: Int
    let compiler: GraphCompiler
    let scope: Scope
    let inputSlots: [Int]
    /// Outer slots read by this node's subgraphs.
    let captured = Box(Set<Int>())
    /// What the optimizer fused into this node (an activation, a residual input), if anything.
    let plan: FusedPlan?

    init(node: IRNode, name: String, opset: Int, compiler: GraphCompiler, scope: Scope, inputSlots: [Int], plan: FusedPlan? = nil) {
        self.plan = plan
        self.node = node
        self.name = name
        self.opset = opset
        self.compiler = compiler
        self.scope = scope
        self.inputSlots = inputSlots
    }

    func bad(_ message: String) -> OpError { OpError(message, kind: .invalidAttribute) }
    func unsupported(_ message: String) -> OpError { OpError(message, kind: .unsupportedOperator) }

    var inputCount: Int { node.inputs.count }
    var outputCount: Int { node.outputs.count }
    /// Whether output `i` is requested.
    func wantsOutput(_ i: Int) -> Bool { i < node.outputs.count && !node.outputs[i].isEmpty }
    /// Whether input `i` is present.
    func hasInput(_ i: Int) -> Bool { i < inputSlots.count && inputSlots[i] >= 0 }

    /// Input `i` when it is a binarized weight kept packed (packed mode), not yet claimed.
    func packedInput(_ i: Int) -> PackedTensor? {
        guard hasInput(i), compiler.constantValues[inputSlots[i]] == nil else { return nil }
        return compiler.packedConstants[inputSlots[i]]?.tensor
    }

    /// The run-time form of packed input `i` (a binarized weight read by this Conv/Gemm/MatMul with
    /// float inputs), claimed: compact in packed mode; in auto mode measured now and decided with
    /// every other weight once the graph is compiled.
    func weightChoice(_ packed: PackedTensor, kind: BitPlaneMatrix.WeightKind, input i: Int, convTrial: ConvGeometry? = nil) throws -> WeightChoice {
        let auto = compiler.options.weights == .auto
        let int8 = compiler.options.convTables == .int8 && kind == .conv
        // Packed mode with int8 tables: a Conv that fits them holds only their codes.
        let int8Packed = int8 && !auto && compiler.options.weights == .packed && convTrial.map { LutConvInt8Weights.accepts(packed, $0) } == true
        let build = (!auto && !int8Packed) || (auto && compiler.options.maxWeightBytes != nil) || kind != .conv
        let choice = try WeightChoice(node: name, weight: node.inputs[i], packed: packed, kind: kind, keepSource: auto, build: build)
        if auto && build { try choice.measure(withLut: true) }
        if auto, kind == .conv, let convTrial {
            if let pinned = compiler.options.lookupTableConvs {
                choice.pinConv(lookupTables: pinned.contains(name), trial: convTrial, int8: int8)
            } else {
                choice.measureConv(trial: convTrial, int8: int8, atRun: compiler.options.maxWeightBytes == nil)
            }
        }
        if int8Packed, let convTrial { try choice.adoptInt8(packed, geometry: convTrial) }
        compiler.weightChoices.append(choice)
        compiler.claimed.insert(inputSlots[i])
        return choice
    }

    /// This node runs input `i` from its bit planes (`bytes` of them): it is never expanded for it.
    func claimPacked(_ i: Int, bytes: Int) {
        compiler.claimed.insert(inputSlots[i])
        compiler.packedBytes += bytes
    }

    /// The element type the model declares for input `i` when it is a graph input or a constant.
    func declaredElementType(ofInput i: Int) -> ElementType? {
        guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
        return compiler.declaredTypes[node.inputs[i]]
    }

    /// The value of input `i` when it is known at load time.
    func constantInput(_ i: Int) -> MBTensor? {
        guard hasInput(i) else { return nil }
        return compiler.constantValues[inputSlots[i]]
    }

    func int(_ name: String) throws -> Int? {
        guard let v = node.attribute(name) else { return nil }
        guard case .int(let x) = v else { throw bad("attribute '\(name)' must be an int") }
        guard let i = Int(exactly: x) else { throw bad("attribute '\(name)' is out of range") }
        return i
    }

    func int(_ name: String, default d: Int) throws -> Int { try int(name) ?? d }

    func ints(_ name: String) throws -> [Int]? {
        guard let v = node.attribute(name) else { return nil }
        switch v {
        case .ints(let xs): return xs.map { Int(truncatingIfNeeded: $0) }
        case .int(let x): return [Int(truncatingIfNeeded: x)]
        default: throw bad("attribute '\(name)' must be a list of ints")
        }
    }

    func float(_ name: String, default d: Float) throws -> Float {
        guard let v = node.attribute(name) else { return d }
        switch v {
        case .float(let x): return x
        case .int(let x): return Float(x)
        default: throw bad("attribute '\(name)' must be a float")
        }
    }

    func floats(_ name: String) throws -> [Float]? {
        guard let v = node.attribute(name) else { return nil }
        guard case .floats(let xs) = v else { throw bad("attribute '\(name)' must be a list of floats") }
        return xs
    }

    func string(_ name: String, default d: String) throws -> String {
        guard let v = node.attribute(name) else { return d }
        guard case .string(let bytes) = v else { throw bad("attribute '\(name)' must be a string") }
        return String(decoding: bytes, as: UTF8.self)
    }

    func strings(_ name: String) throws -> [String]? {
        guard let v = node.attribute(name) else { return nil }
        guard case .strings(let list) = v else { throw bad("attribute '\(name)' must be a list of strings") }
        return list.map { String(decoding: $0, as: UTF8.self) }
    }

    func tensor(_ name: String) throws -> MBTensor? {
        guard let v = node.attribute(name) else { return nil }
        guard case .tensor(let t) = v else { throw bad("attribute '\(name)' must be a tensor") }
        do { return try TensorConversion.tensor(from: t) } catch { throw bad("attribute '\(name)': \(error.message)") }
    }

    /// Compiles the graph attribute `name` in a scope nested in this node's.
    func subgraph(_ name: String) throws -> CompiledGraph {
        guard let v = node.attribute(name) else { throw bad("attribute '\(name)' (a graph) is required") }
        guard case .graph(let g) = v else { throw bad("attribute '\(name)' must be a graph") }
        let compiled = try compiler.compile(g, parent: scope, place: "node '\(self.name)' \(name)")
        captured.value.formUnion(compiled.captures)
        return compiled
    }

    /// Reads an `axis` attribute (or default) and checks it later against the rank.
    func axis(_ name: String = "axis", default d: Int) throws -> Int { try int(name, default: d) }
}

/// Normalizes a possibly negative axis against `rank`.
func normalizeAxis(_ axis: Int, rank: Int, what: String = "axis") throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else { throw OpError("\(what) \(axis) is out of range for rank \(rank)") }
    return a
}

/// The state of one run: values by slot, the buffer pool, threads and kernel variant.
final class ExecutionContext: @unchecked Sendable {
    var env: [MBTensor?]
    /// Sequences and optionals, by slot (a slot holds a tensor in `env` or a value here, never
    /// both). Only value steps (`Step.valueRun`) write here; empty for tensor-only models.
    var others: [Int: MBValue] = [:]
    let pool: BufferPool
    let threads: Int
    let variant: KernelVariant
    /// Kernel scratch memory; a session passes its own so buffers (im2col, padded input,
    /// decoded weights) are allocated and page-faulted once, not on every run.
    let scratch: KernelScratch
    let bitScratch: BitPlaneScratch
    /// Per-node times when the session profiles.
    var profile: MBProfile?
    /// Replacements applied to values as they are computed, by slot (MBSession.run(_:transforming:)).
    var transforms: [Int: (MBTensor) -> MBTensor] = [:]
    /// Largest tensor a node may allocate, and the option that sets it (for messages).
    let maxTensorBytes: Int
    let limitName: String
    /// Concat layouts of earlier runs (the session's), for writing Concat inputs in place; nil
    /// when this context does not place them (load-time folding).
    let concatLayouts: ConcatLayouts?
    /// Buffers of Concats some of whose producers have run, by the Concat's output slot.
    var reservedConcats: [Int: TensorStorage] = [:]
    /// The slice of a Concat's buffer offered to the running step's output.
    var pendingPlacement: (storage: TensorStorage, type: ElementType)?
    /// The output slot of the placed Concat now running.
    var runningConcat: Int?
    /// Auto mode: Convs that decided an input shape's form during this run (`MBSession` checks
    /// their choice of the tables on whole runs).
    var decidedChoices: [WeightChoice] = []
    /// The whole-model check's all-expanded runs: unchecked choices of the tables run expanded.
    var uncheckedExpanded = false
    /// Auto mode: how much faster a Conv's tables must time in its layer trial (`MBSession.Options.autoLayerMargin`).
    var lutMargin = 0.95

    init(slotCount: Int, threads: Int, variant: KernelVariant, pool: BufferPool = BufferPool(),
         scratch: KernelScratch = KernelScratch(), bitScratch: BitPlaneScratch = BitPlaneScratch(),
         maxTensorBytes: Int = MBSession.Options.defaultMaxTensorBytes, limitName: String = "MBSession.Options.maxTensorBytes",
         concatLayouts: ConcatLayouts? = nil) {
        self.concatLayouts = concatLayouts
        self.env = Array(repeating: nil, count: slotCount)
        self.scratch = scratch
        self.bitScratch = bitScratch
        self.threads = threads
        self.variant = variant
        self.pool = pool
        self.maxTensorBytes = maxTensorBytes
        self.limitName = limitName
    }

    /// An uninitialized tensor (from the pool when a buffer of that size is free). Throws before
    /// allocating when the shape is invalid or the tensor would exceed `maxTensorBytes`.
    func alloc(_ type: ElementType, _ shape: [Int]) throws(OpError) -> MBTensor {
        let bytes = try checkedBytes(type, shape)
        if pendingPlacement != nil, let s = takePlacement(type, bytes: bytes) { return MBTensor(elementType: type, shape: shape, storage: s) }
        return MBTensor(elementType: type, shape: shape, storage: pool.take(byteCount: bytes))
    }

    /// A tensor over `storage` when given (a buffer reserved for this output), else `alloc`.
    func alloc(_ type: ElementType, _ shape: [Int], placedInto storage: TensorStorage?) throws(OpError) -> MBTensor {
        guard let storage else { return try alloc(type, shape) }
        return MBTensor(elementType: type, shape: shape, storage: storage)
    }

    /// The byte size of a `type` tensor of `shape`, checked against the limit.
    func checkedBytes(_ type: ElementType, _ shape: [Int]) throws(OpError) -> Int {
        if let d = shape.first(where: { $0 < 0 }) { throw OpError("output shape \(shape) has a negative dimension \(d)") }
        guard let count = elementCount(of: shape) else {
            throw OpError("output shape \(shape) has more elements than a 64-bit count can hold", kind: .limitExceeded)
        }
        guard let bytes = byteCount(elements: count, size: type.runtimeSize) else {
            throw OpError("output shape \(shape) of \(type.name) needs more bytes than a 64-bit count can hold", kind: .limitExceeded)
        }
        guard bytes <= maxTensorBytes else {
            throw OpError("output shape \(shape) of \(type.name) needs \(bytes) bytes, more than the limit of \(maxTensorBytes) (\(limitName))",
                          kind: .limitExceeded)
        }
        return bytes
    }

    /// A float tensor of `shape` for an elementwise result: written over the buffer of one of
    /// `candidates` (input indices) when `inputs` says it dies here, else from the pool.
    func output(_ shape: [Int], reusing candidates: [Int], of inputs: Inputs) throws(OpError) -> MBTensor {
        let bytes = try checkedBytes(.float, shape)
        if pendingPlacement != nil, let s = takePlacement(.float, bytes: bytes) { return MBTensor(elementType: .float, shape: shape, storage: s) }
        for i in candidates {
            if let s = inputs.reusableStorage(i, bytes: bytes), inputs.values[i]?.elementType == .float {
                reusedBuffers += 1
                return MBTensor(elementType: .float, shape: shape, storage: s)
            }
        }
        return MBTensor(elementType: .float, shape: shape, storage: pool.take(byteCount: bytes))
    }

    /// Outputs written over a dying input this run.
    var reusedBuffers = 0
    /// Concat inputs found already in place this run.
    var concatInputsInPlace = 0

    /// A zero-filled tensor.
    func zeros(_ type: ElementType, _ shape: [Int]) throws(OpError) -> MBTensor {
        let t = try alloc(type, shape)
        t.storage.raw.initializeMemory(as: UInt8.self, repeating: 0, count: t.count * type.runtimeSize)
        return t
    }

    /// Drops the value in `slot`; its buffer returns to the pool when nothing else holds it.
    func release(_ slot: Int) {
        env[slot] = nil
        if !others.isEmpty { others[slot] = nil }
    }

    /// The value in `slot` of any kind (nil when it has none).
    func value(_ slot: Int) -> MBValue? {
        if let t = env[slot] { return .tensor(t) }
        return others.isEmpty ? nil : others[slot]
    }

    /// Puts `value` in `slot`: a tensor in `env`, a sequence or optional in `others`.
    func setValue(_ value: MBValue?, _ slot: Int) {
        if case .tensor(let t)? = value {
            env[slot] = t
            if !others.isEmpty { others[slot] = nil }
        } else {
            env[slot] = nil
            others[slot] = value
        }
    }

    /// The inputs of `step`, with those whose value dies at this step marked reusable when this
    /// step holds the only reference to their buffer (no view, no other input, no later reader):
    /// an elementwise op may then write its output over them.
    func inputs(of step: Step) -> Inputs {
        var values = step.inputs.map { $0 < 0 ? nil : env[$0] }
        guard !step.donatable.isEmpty else { return Inputs(values) }
        var reusable = [Bool](repeating: false, count: values.count)
        for j in step.donatable { env[step.inputs[j]] = nil }
        for j in step.donatable {
            guard var t = values[j] else { continue }
            values[j] = nil
            reusable[j] = isKnownUniquelyReferenced(&t.storage) && t.storage.home != nil
            values[j] = t
        }
        return Inputs(values, reusable: reusable)
    }

    /// Runs `graph` in the current environment and returns its outputs, which must be tensors.
    func run(_ graph: CompiledGraph) throws(MBRuntimeError) -> [MBTensor] {
        var result: [MBTensor] = []
        for (i, v) in try runValues(graph).enumerated() {
            guard let t = v.tensor else { throw MBRuntimeError(.execution, "graph output '\(graph.outputNames[i])' is \(v.kindName), not a tensor") }
            result.append(t)
        }
        return result
    }

    /// Runs `graph` in the current environment and returns its outputs of any kind.
    func runValues(_ graph: CompiledGraph) throws(MBRuntimeError) -> [MBValue] {
        for c in graph.constants { env[c.slot] = c.value }
        for step in graph.steps {
            if let valueRun = step.valueRun {
                try runValueStep(step, valueRun)
                continue
            }
            let outputs: [MBTensor]
            if let p = step.placeInto { preparePlacement(p) }
            if step.placesInputs { runningConcat = step.outputs[0] }
            defer { pendingPlacement = nil; runningConcat = nil }
            do {
                // The inputs array dies with this call, so released buffers can be unique below.
                if let profile {
                    let start = profile.now()
                    outputs = try step.run(inputs(of: step), self)
                    profile.add(step, nanoseconds: profile.now() - start)
                } else {
                    outputs = try step.run(inputs(of: step), self)
                }
            } catch {
                throw Self.runtimeError(error, step)
            }
            for (i, s) in step.outputs.enumerated() where s >= 0 {
                guard i < outputs.count else {
                    throw MBRuntimeError(.unsupportedOperator, node: step.name, opType: step.opType, "output \(i) is not produced by this runtime")
                }
                env[s] = outputs[i]
                if !transforms.isEmpty, let transform = transforms[s] { env[s] = transform(outputs[i]) }
            }
            // A tensor step's released slots hold tensors, unless value steps share this graph;
            // graph inputs that are not tensors are cleared with the owned slots below.
            if graph.hasValueSteps {
                for s in step.release { release(s) }
            } else {
                for s in step.release { env[s] = nil }
            }
        }
        var result: [MBValue] = []
        for (i, s) in graph.outputSlots.enumerated() {
            guard let v = value(s) else { throw MBRuntimeError(.execution, "graph output '\(graph.outputNames[i])' has no value") }
            result.append(v)
        }
        if others.isEmpty {
            for s in graph.owned { env[s] = nil }
        } else {
            for s in graph.owned { release(s) }
        }
        return result
    }

    /// A step's failure as the error a run throws, naming the node.
    static func runtimeError(_ error: any Error, _ step: Step) -> MBRuntimeError {
        switch error {
        case let e as OpError: return MBRuntimeError(e.kind, node: step.name, opType: step.opType, e.message)
        case let e as MBRuntimeError: return e
        default: return MBRuntimeError(.execution, node: step.name, opType: step.opType, "\(error)")
        }
    }

    /// A step that makes or reads sequences and optionals: its inputs of any kind, its outputs
    /// put where their kind lives.
    private func runValueStep(_ step: Step, _ valueRun: ValueRun) throws(MBRuntimeError) {
        let outputs: [MBValue]
        do {
            let start = profile?.now() ?? 0
            outputs = try valueRun(step.inputs.map { $0 < 0 ? nil : value($0) }, self)
            if let profile { profile.add(step, nanoseconds: profile.now() - start) }
        } catch {
            throw Self.runtimeError(error, step)
        }
        for (i, s) in step.outputs.enumerated() where s >= 0 {
            guard i < outputs.count else {
                throw MBRuntimeError(.unsupportedOperator, node: step.name, opType: step.opType, "output \(i) is not produced by this runtime")
            }
            setValue(outputs[i], s)
            if !transforms.isEmpty, let transform = transforms[s], let t = outputs[i].tensor { env[s] = transform(t) }
        }
        for s in step.release { release(s) }
    }
}
