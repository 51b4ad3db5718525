import Dispatch
import MBCore
import MBKernels

/// A model ready to run: its graph checked and compiled once (operators looked up in the op
/// table, attributes read and validated, constant-only subgraphs folded, buffer lifetimes
/// planned). Immutable and shareable between threads; each thread runs its own `MBSession`.
public final class MBModel: Sendable {
    /// Runtime inputs with their declared element types and shapes (symbolic dims kept).
    public let inputs: [IRValueInfo]
    public let outputs: [IRValueInfo]
    /// Operator sets the graph was written against ("" is the default ONNX domain).
    public let opsets: [IROpset]
    let graph: CompiledGraph
    let slotCount: Int
    /// How many nodes were folded into constants at load.
    public let foldedNodeCount: Int
    /// What the load-time optimizer did: nodes rewritten per pass, by pass name.
    public let optimizerReport: [String: Int]
    public let options: Options
    /// Binarized weights the kernels run from their bit planes (packed mode), by node name.
    public let packedNodes: [String]
    /// Bytes of every constant the model keeps: float tensors (expanded weights included) plus
    /// the bit planes of packed weights. Mapped float weights count too (they become resident
    /// once read).
    /// A Conv that auto decides at run time counts both of its forms until its first run, then
    /// the forms it kept (and its packed source).
    public var weightBytes: Int { otherWeightBytes + liveWeightChoices.reduce(0) { $0 + $1.report.residentBytes } }
    /// Constants and bit planes outside the weight choices.
    let otherWeightBytes: Int
    /// How each binarized weight of a Conv/Gemm/MatMul with float inputs runs (packed and auto
    /// modes; empty in expanded mode), in graph order.
    /// (A Conv decided at run time reports its current forms and decisions.)
    public var weightChoices: [WeightChoice] { liveWeightChoices.map(\.report) }
    let liveWeightChoices: [MBRuntime.WeightChoice]
    /// Auto mode: the whole-model checks of Convs' choices of the lookup tables, one per run that
    /// decided new input shapes with some on the tables (`MBSession` runs them), oldest first.
    public var modelChecks: [ModelCheck] { modelCheckLog.all }
    let modelCheckLog = ModelCheckLog()

    /// One whole-model check: the best wall time of a run with the new choices of the tables and of
    /// one with those Convs expanded (same inputs, the session's threads), and the verdict.
    public struct ModelCheck: Sendable {
        public var inputShapes: [[Int]]
        public var threads: Int
        /// Convs whose choice of the tables was checked.
        public var layers: Int
        public var tablesNanoseconds: Double
        public var expandedNanoseconds: Double
        /// The tables kept (the runs with them at least 3 % faster), else those Convs run expanded.
        public var keptTables: Bool
    }

    /// One binarized weight's run-time form and what it was chosen by.
    public struct WeightChoice: Sendable {
        public var node: String
        public var weight: String
        /// Compact bit planes decoded a tile at a time, or lookup-table layouts (`lookupTables`:
        /// the GEMV's bit planes for a Gemm/MatMul, the lookup-table convolution's codes for a
        /// Conv) (true), or expanded floats.
        public var packed: Bool
        public var lookupTables: Bool
        public var residentBytes: Int
        public var compactBytes: Int
        public var expandedBytes: Int
        /// Auto mode's measurements at load: decoding every tile once; a batch-1 product from
        /// each form (Gemm/MatMul); for a Conv the float and the lookup-table convolution on the
        /// node's kernel over a made-up input (expanded / lookup-table trial). Zero / nil in
        /// packed mode.
        public var decodeNanoseconds: Double
        public var packedTrialNanoseconds: Double?
        public var expandedTrialNanoseconds: Double?
        public var lookupTableTrialNanoseconds: Double?
        /// Auto mode without a budget or pinned choices, a Conv whose weights fit the lookup
        /// tables: the form is chosen at the node's first run on each input shape, timing both
        /// on that input (`decisions`). Until then both forms are resident (`residentBytes`
        /// counts both, and the packed source kept to rebuild a dropped form: about a byte per
        /// weight); after, the form no decided shape uses is dropped.
        public var decidesAtRun: Bool = false
        public var decisions: [ShapeDecision] = []

        /// One input shape's choice: each form's wall time on that input (the session's threads,
        /// best of 3; the tables are chosen when at least 5 % faster), then the whole-model check
        /// (`MBModel.modelChecks`): `checked` once it ran; `revertedByModelCheck` when the layer
        /// trial chose the tables but the whole run with them was not faster than all-expanded, so
        /// the shape runs expanded (`lookupTables` false).
        public struct ShapeDecision: Sendable {
            public var input: [Int]
            public var lookupTables: Bool
            public var expandedNanoseconds: Double
            public var lookupTableNanoseconds: Double
            /// The int8 dot-product convolution's time (pointwise Convs with int8 tables; nil: not
            /// tried), and whether it was the lossy form chosen (`lookupTables` then set too).
            public var dotProductNanoseconds: Double? = nil
            public var dotProducts = false
            public var checked = true
            public var revertedByModelCheck = false
        }
    }

    /// What loading may allocate and how deep it may recurse.
    public struct Options: Sendable {
        /// Largest tensor made at load, in bytes: a binarized weight expanded to float, a
        /// float16 or double constant converted, a constant subgraph folded. A constant over it
        /// is refused (`.limitExceeded`, naming it) when a node uses it; a fold over it is left
        /// for run time, where `MBSession.Options.maxTensorBytes` applies.
        public var maxTensorBytes: Int
        /// Deepest nesting of subgraphs (If branches) accepted.
        public var maxGraphDepth: Int
        /// How binarized weights run.
        public var weights: Weights
        /// Auto mode's budget for resident weights (every constant, binarized weights in the form
        /// chosen): weights go compact, least measured slowdown per byte first, until it fits
        /// (or all are). nil: no budget (only weights whose compact form measured faster go compact).
        public var maxWeightBytes: Int?
        /// Run the graph optimizer at load (`GraphOptimizer`: constant folding, BatchNormalization
        /// folding, activation and residual fusion, no-op and dead node removal). Off only to
        /// compare against the graph as written.
        public var optimize: Bool
        /// The lookup tables a binarized Conv with float inputs runs on where it runs on tables
        /// (auto mode: where they time faster than the float convolution; packed mode with
        /// `.int8`: every Conv that fits). `.float` is exact to float rounding; `.int8` is lossy.
        public var convTables: ConvTables
        /// Auto mode: the Convs (node names) that run on lookup tables, instead of the timing at
        /// the first run (or, with `maxWeightBytes`, the load-time trial) deciding. Pins a choice so that every load runs the same kernels (bit-identical
        /// outputs): pass a previous load's `Set(model.weightChoices.filter(\.lookupTables).map(\.node))`.
        /// A named Conv whose weights do not fit the tables stays expanded. nil: measured at load.
        public var lookupTableConvs: Set<String>?

        /// Lookup tables for binarized Convs (`LutConvWeights`, `LutConvInt8Weights` in MBKernels).
        public enum ConvTables: String, Sendable, CaseIterable {
            /// Float sums of 4 inputs per table entry: the float convolution's result within float
            /// rounding.
            case float
            /// int8 tables in registers (byte permutes, int32 sums; the technique of T-MAC): the
            /// inputs are quantized per output position and 256 reduction entries, so outputs move
            /// (about 1e-2 relative on a layer, measured in MBKernels' README). Faster; opt-in.
            case int8
        }

        /// How binarized weights run.
        public enum Weights: String, Sendable, CaseIterable {
            /// Expanded once at load into exactly the stored values; float kernels.
            case expanded
            /// Kept at about their stored size (never expanded whole): Conv/Gemm/MatMul with float
            /// inputs decode a bounded tile of rows at a time for the float kernels, with binarized
            /// inputs run the bit-plane kernels; other readers of a binarized tensor get it expanded.
            case packed
            /// Per weight the faster form, measured at load (a decode of its tiles; for Gemm/MatMul
            /// a batch-1 product from each form), within `maxWeightBytes`. A Conv that fits the
            /// lookup tables, without a budget, decides at its first run on each input shape
            /// (both forms timed on that input; `WeightChoice.decisions`); with a budget, by a
            /// load-time trial on a made-up input (the budget needs every form at load).
            case auto
        }

        public init(maxTensorBytes: Int = MBSession.Options.defaultMaxTensorBytes, maxGraphDepth: Int = 64, weights: Weights = .auto,
                    optimize: Bool = true, maxWeightBytes: Int? = nil, convTables: ConvTables = .float,
                    lookupTableConvs: Set<String>? = nil) {
            self.maxWeightBytes = maxWeightBytes
            self.lookupTableConvs = lookupTableConvs
            self.convTables = convTables
            self.optimize = optimize
            self.maxTensorBytes = maxTensorBytes
            self.maxGraphDepth = maxGraphDepth
            self.weights = weights
        }
    }

    /// Checks and compiles an IR model: every value defined before use, every operator in the
    /// table (`node 'x' (Foo): operator Foo (domain '') is not supported` otherwise), attributes
    /// of the right types and ranges, constants of supported element types.
    public init(ir: IRModel, options: Options = Options()) throws(MBRuntimeError) {
        // The runtime's BLAS calls run on one thread; this also stops OpenBLAS's idle workers,
        // which would otherwise spin through the load-time trials and the first runs.
        BLAS.setThreads(1)
        let opset = ir.opsetVersion(domain: "") ?? ir.opsetVersion(domain: "ai.onnx") ?? 1
        let compiler = GraphCompiler(opset: Int(opset), opsets: ir.opsets, options: options)
        var irGraph = ir.graph
        if options.optimize {
            // Folding evaluates nodes (CastLike) that need the declared types of what they read.
            for i in ir.graph.inputs { if let t = i.elementType { compiler.declaredTypes[i.name] = t } }
            for c in ir.graph.constants { compiler.declaredTypes[c.name] = c.elementType }
            let optimized = GraphOptimizer.optimize(ir.graph, compiler: compiler)
            irGraph = optimized.graph
            compiler.plans = optimized.plans
            compiler.presetConstants = optimized.constants
            self.optimizerReport = optimized.report
        } else {
            self.optimizerReport = [:]
        }
        let graph = try compiler.compile(irGraph, parent: nil, place: "graph")
        try compiler.resolveWeightChoices(graph)
        self.graph = graph
        self.liveWeightChoices = compiler.weightChoices
        self.slotCount = compiler.slotCount
        // Folded by the optimizer's first pass or, for what it leaves (subgraphs), by the compiler.
        self.foldedNodeCount = compiler.folded + (optimizerReport["fold-constants"] ?? 0)
        self.inputs = ir.graph.inputs
        self.outputs = ir.graph.outputs
        self.opsets = ir.opsets
        self.options = options
        self.packedNodes = compiler.packedNodes
        self.otherWeightBytes = compiler.residentConstantBytes(graph) - compiler.weightChoices.reduce(0) { $0 + $1.residentBytes }
    }

    public func makeSession(_ options: MBSession.Options = .init()) -> MBSession {
        MBSession(model: self, options: options)
    }

    /// Names of every operator the runtime supports (default ONNX domain).
    public static var supportedOperators: [String] { Set(OpTable.all.keys).union(OpTable.values.keys).sorted() }

    /// Operators of `ir` (including subgraphs) the runtime does not support, by first node.
    public static func unsupportedOperators(in ir: IRModel) -> [(node: String, opType: String, domain: String)] {
        var missing: [(String, String, String)] = []
        var seen = Set<String>()
        func walk(_ g: IRGraph) {
            for (i, n) in g.nodes.enumerated() {
                if !OpTable.supports(n.domain, n.opType) {
                    if seen.insert(n.domain + ":" + n.opType).inserted { missing.append((n.name.isEmpty ? "#\(i)" : n.name, n.opType, n.domain)) }
                }
                for a in n.attributes {
                    if case .graph(let sub) = a.value { walk(sub) }
                    if case .graphs(let subs) = a.value { subs.forEach(walk) }
                }
            }
        }
        walk(ir.graph)
        return missing
    }
}

/// One node ready to run: where its inputs and outputs live and which values die after it.
struct Step: Sendable {
    let name: String
    /// The operator, or for a fused node the operators it runs ("Conv+BatchNormalization+Relu").
    let opType: String
    /// Slot per input; -1 for an omitted optional input.
    let inputs: [Int]
    /// Slot per output; -1 for an omitted optional output.
    let outputs: [Int]
    let run: OpRun
    /// Set for a node that makes or reads sequences and optionals: run instead of `run`.
    var valueRun: ValueRun? = nil
    /// Slots whose last use this step is; released (their buffers recycled) after it.
    var release: [Int] = []
    /// Input indices whose value dies at this step (not graph inputs or constants): the step
    /// may write its output over them when it holds their buffer's only reference.
    var donatable: [Int] = []
    /// This step's one output is inputs `input..<input + count` of the Concat whose output is
    /// slot `concat` (count 1, or the parts of a Split of it that the Concat takes in order):
    /// once that Concat's layout is known, the output is written straight into its slice of
    /// the Concat's buffer (see `ConcatPlacement`).
    var placeInto: (concat: Int, input: Int, count: Int)? = nil
    /// A Concat some of whose inputs are placed into its buffer by their producers.
    var placesInputs = false
}

/// A graph (main or If branch) compiled against one slot space shared by all scopes.
final class CompiledGraph: Sendable {
    let inputSlots: [Int]
    let outputSlots: [Int]
    let outputNames: [String]
    /// Constants this graph's steps or outputs use.
    let constants: [(slot: Int, value: MBTensor)]
    let steps: [Step]
    /// Slots of enclosing scopes this graph (or its subgraphs) reads.
    let captures: Set<Int>
    /// Slots this graph defines (cleared when it finishes).
    let owned: [Int]
    /// Whether any step runs on sequences and optionals: without one, the slots a step releases
    /// only ever hold tensors (`ExecutionContext.runValues` then skips the others' table).
    let hasValueSteps: Bool

    init(inputSlots: [Int], outputSlots: [Int], outputNames: [String], constants: [(slot: Int, value: MBTensor)],
         steps: [Step], captures: Set<Int>, owned: [Int]) {
        self.inputSlots = inputSlots
        self.outputSlots = outputSlots
        self.outputNames = outputNames
        self.constants = constants
        self.steps = steps
        self.captures = captures
        self.owned = owned
        self.hasValueSteps = steps.contains { $0.valueRun != nil }
    }
}

/// Auto mode's whole-model checks: their record, and one at a time per model (sessions sharing
/// a model do not time their checks against each other).
final class ModelCheckLog: @unchecked Sendable {
    private let lock = DispatchSemaphore(value: 1)
    private let running = DispatchSemaphore(value: 1)
    private var checks: [MBModel.ModelCheck] = []

    var all: [MBModel.ModelCheck] {
        lock.wait()
        defer { lock.signal() }
        return checks
    }

    func append(_ c: MBModel.ModelCheck) {
        lock.wait()
        checks.append(c)
        lock.signal()
    }

    func serialize<T>(_ body: () -> T) -> T {
        running.wait()
        defer { running.signal() }
        return body()
    }
}
