import Dispatch
import MBCore
import MBKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a model. A session keeps a pool of intermediate buffers and kernel scratch memory
/// between runs; it is not for concurrent use (make one session per thread).
public final class MBSession {
    public struct Options: Sendable {
        /// Threads for the BLAS and the runtime's own parallel loops.
        public var threads: Int
        /// `.reference` runs every kernel through its plain-loop twin (slow; defines correctness).
        public var kernels: KernelVariant
        /// Time every node; the totals of the last run are in `MBSession.lastProfile`.
        public var profile: Bool
        /// With `profile`: time nodes by the calling thread's CPU time instead of the wall clock
        /// (at one thread every kernel runs on it, so other processes' load does not count).
        public var profileThreadCPUTime = false
        /// Largest tensor one node may allocate, in bytes. A node asking for more (a Reshape,
        /// Expand, ConstantOfShape, Tile or Resize driven by hostile values, say) fails with a
        /// `.limitExceeded` error naming the node and its shape, before anything is allocated.
        public var maxTensorBytes: Int

        /// Auto mode: the fraction of the expanded (float) time a Conv's lookup tables must beat
        /// in its layer trial to be chosen (default 0.95), and the fraction of the all-expanded
        /// run time the runs with the chosen tables must beat in the whole-model check to be kept
        /// (default 0.97). Used by the first run on each input shape. 0 never takes the tables,
        /// infinity always does (tests pin the verdicts this way, independent of timings).
        public var autoLayerMargin = 0.95
        public var autoModelMargin = 0.97

        /// The default of `maxTensorBytes`: 4 GiB.
        public static let defaultMaxTensorBytes = 1 << 32

        public init(threads: Int = 1, kernels: KernelVariant = .fast, profile: Bool = false,
                    maxTensorBytes: Int = Options.defaultMaxTensorBytes) {
            self.threads = max(1, threads)
            self.kernels = kernels
            self.profile = profile
            self.maxTensorBytes = maxTensorBytes
        }
    }

    public let model: MBModel
    public let options: Options
    private let pool = BufferPool()
    private let scratch = KernelScratch()
    private let bitScratch = BitPlaneScratch()
    private let concatLayouts = ConcatLayouts()

    init(model: MBModel, options: Options) {
        self.model = model
        self.options = options
    }

    /// Runs the model on named inputs and returns every graph output by name. Shapes are
    /// inferred from the inputs; each input must match its declared element type as the runtime
    /// holds it (float for float16 and double; int32 for int8, uint8, int16 and uint16; int64
    /// for uint32), rank and fixed dimensions. A model whose inputs or outputs are sequences or
    /// optionals runs through `run(values:)`.
    public func run(_ inputs: [String: MBTensor]) throws(MBRuntimeError) -> [String: MBTensor] {
        try run(inputs, transforming: [:])
    }

    /// Runs like `run(_:)`, replacing each named graph output, the moment it is computed and
    /// before any later node reads it, with what its transform returns. Calibration uses this
    /// to correct a layer's output statistics in graph order within one run.
    public func run(
        _ inputs: [String: MBTensor], transforming transforms: [String: (MBTensor) -> MBTensor]
    ) throws(MBRuntimeError) -> [String: MBTensor] {
        var result: [String: MBTensor] = [:]
        for (name, value) in try execute(inputs.mapValues { .tensor($0) }, transforms) {
            guard let t = value.tensor else {
                throw MBRuntimeError(.invalidInput, "output '\(name)' is \(value.kindName), not a tensor; run(values:) returns it")
            }
            result[name] = t
        }
        return result
    }

    /// Runs the model on named inputs of any kind (tensors, sequences, optionals) and returns
    /// every graph output by name as the graph makes it: a tensor, a sequence, or an optional
    /// (`.optional(nil)` when empty). Tensors are checked as in `run(_:)`; an input declared a
    /// sequence must be a sequence; an input declared optional takes `.optional(...)` or, as
    /// present, the value itself.
    public func run(values inputs: [String: MBValue]) throws(MBRuntimeError) -> [String: MBValue] {
        try execute(inputs, [:])
    }

    private func execute(_ inputs: [String: MBValue], _ transforms: [String: (MBTensor) -> MBTensor]) throws(MBRuntimeError) -> [String: MBValue] {
        let graph = model.graph
        func makeContext() throws(MBRuntimeError) -> ExecutionContext {
            let context = ExecutionContext(slotCount: model.slotCount, threads: options.threads, variant: options.kernels, pool: pool,
                                           scratch: scratch, bitScratch: bitScratch,
                                           maxTensorBytes: options.maxTensorBytes, concatLayouts: concatLayouts)
            context.lutMargin = options.autoLayerMargin
            for (name, transform) in transforms {
                guard let i = graph.outputNames.firstIndex(of: name) else {
                    throw MBRuntimeError(.invalidInput, "'\(name)' is not a graph output; only graph outputs can be transformed")
                }
                context.transforms[graph.outputSlots[i]] = transform
            }
            for name in inputs.keys where !model.inputs.contains(where: { $0.name == name }) {
                throw MBRuntimeError(.invalidInput, "unknown input '\(name)'; the model's inputs are \(model.inputs.map { "'\($0.name)'" }.joined(separator: ", "))")
            }
            for (info, slot) in zip(model.inputs, graph.inputSlots) {
                guard let v = inputs[info.name] else { throw MBRuntimeError(.invalidInput, "input '\(info.name)' is missing") }
                try Self.check(v, against: info)
                context.setValue(v, slot)
            }
            return context
        }
        var context = try makeContext()
        // The BLAS runs single-threaded; kernels split their GEMMs across the session's threads
        // (measured faster than OpenBLAS's own threading on these small products).
        BLAS.setThreads(1)
        if options.profile { context.profile = MBProfile(threadCPUTime: options.profileThreadCPUTime) }
        pool.core.resetPeak()
        let missesBefore = pool.core.misses
        defer {
            lastProfile = context.profile
            lastPeakActivationBytes = pool.core.peakLiveBytes
            lastRunAllocations = pool.core.misses - missesBefore
            lastRunReusedBuffers = context.reusedBuffers
            lastRunConcatInputsInPlace = context.concatInputsInPlace
        }
        var values = try context.runValues(graph)
        if !context.decidedChoices.isEmpty {
            let reverted = try checkDecisions(context.decidedChoices, inputs)
            Self.returnFreedPages()
            // This run's outputs came from the layers' winning trials; where the model check sent
            // some back to expanded, run once more so the first run returns what every later one does.
            if reverted {
                context = try makeContext()
                if options.profile { context.profile = MBProfile(threadCPUTime: options.profileThreadCPUTime) }
                values = try context.runValues(graph)
            }
        }
        var result: [String: MBValue] = [:]
        for (name, value) in zip(graph.outputNames, values) { result[name] = value }
        return result
    }

    /// Auto mode, after a run in which Convs decided their form for new input shapes: when some
    /// chose the lookup tables, times whole runs on the same inputs (the session's threads, wall
    /// clock, alternating, best of `modelCheckRounds` each) with those choices and with those
    /// Convs expanded, and keeps the tables only when the runs with them are at least 3 % faster
    /// (`Options.autoModelMargin`; else every one of them runs expanded for its shape). Layer trials
    /// time each Conv alone with warm caches; a whole run also pays what one layer's form does
    /// to the next (caches, the scratch it fills), so this check is what makes auto never slower
    /// than the expanded (float) model by more than the timing noise. Costs 2 x
    /// `modelCheckRounds` runs, once per new input shape.
    private func checkDecisions(_ decided: [WeightChoice], _ inputs: [String: MBValue]) throws(MBRuntimeError) -> Bool {
        model.modelCheckLog.serialize {
            let unchecked = decided.filter(\.hasUnchecked)
            guard !unchecked.isEmpty else { return false }
            var more = unchecked
            func timedRun(expanded: Bool) -> Double? {
                let c = ExecutionContext(slotCount: model.slotCount, threads: options.threads, variant: options.kernels, pool: pool,
                                         scratch: scratch, bitScratch: bitScratch,
                                         maxTensorBytes: options.maxTensorBytes, concatLayouts: concatLayouts)
                for (info, slot) in zip(model.inputs, model.graph.inputSlots) { if let v = inputs[info.name] { c.setValue(v, slot) } }
                c.uncheckedExpanded = expanded
                c.lutMargin = options.autoLayerMargin
                let start = DispatchTime.now().uptimeNanoseconds
                guard (try? c.runValues(model.graph)) != nil else { return nil }
                let t = Double(DispatchTime.now().uptimeNanoseconds - start)
                more += c.decidedChoices.filter(\.hasUnchecked)
                return t
            }
            var withTables = Double.infinity, expanded = Double.infinity
            for r in 0..<Self.modelCheckRounds {
                // Alternating, and which goes first alternates too.
                for first in [r % 2 == 0, r % 2 != 0] {
                    guard let t = timedRun(expanded: !first) else { continue }
                    if first { withTables = min(withTables, t) } else { expanded = min(expanded, t) }
                }
            }
            let keep = withTables < expanded * options.autoModelMargin
            var seen = Set<ObjectIdentifier>()
            for c in more where seen.insert(ObjectIdentifier(c)).inserted { c.confirmUnchecked(keepTables: keep) }
            let shapes = model.inputs.compactMap { inputs[$0.name]?.tensor?.shape }
            model.modelCheckLog.append(MBModel.ModelCheck(inputShapes: shapes, threads: options.threads, layers: unchecked.count,
                                                          tablesNanoseconds: withTables, expandedNanoseconds: expanded, keptTables: keep))
            return !keep
        }
    }

    /// After auto's decisions for a new shape: the dropped forms (tables, or expanded weights and
    /// their channel-packed copies) were freed into glibc's heap; give those pages back once, so
    /// resident memory follows the forms kept (open-nsfw fast.txt, int8 tables: 97 -> 56 MB after
    /// the first run). `<malloc.h>` is not part of the Glibc module: looked up by name.
    static func returnFreedPages() {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: MallocTrim.self)(0) }
        #endif
    }

    /// Whole runs per form in auto's model check.
    static let modelCheckRounds = 3

    /// Checks a value of any kind against a graph input's declared type.
    static func check(_ v: MBValue, against info: IRValueInfo) throws(MBRuntimeError) {
        func refuse(_ expected: String) -> MBRuntimeError {
            MBRuntimeError(.invalidInput, "input '\(info.name)': expected \(expected), got \(v.kindName) (\(v))")
        }
        switch (v, info.nonTensorType) {
        case (.tensor(let t), nil): try check(t, against: info)
        case (.tensor(let t), .optional(.tensor(let e, let shape))?):
            try check(t, against: IRValueInfo(name: info.name, elementType: e, shape: shape))
        case (.tensor, .optional(nil)?): return
        case (.tensor, let declared?): throw refuse("\(declared)")
        case (.sequence(let s), .sequence(let inner)?), (.sequence(let s), .optional(.sequence(let inner)?)?):
            guard case .tensor(let e?, _)? = inner, let element = s.elementType else { return }
            let expected = TensorConversion.runtimeType(of: e) ?? e
            guard element == expected else { throw MBRuntimeError(.invalidInput, "input '\(info.name)': expected a sequence of \(e.name), got one of \(element.name)") }
        case (.sequence, .optional(nil)?): return
        case (.sequence, _): throw refuse(info.nonTensorType.map { "\($0)" } ?? "a tensor")
        case (.optional(let inner), .optional(let declared)?):
            guard let inner else { return }
            try check(inner, against: IRValueInfo(name: info.name, elementType: nil, shape: nil, nonTensorType: declared.map { d -> IRType in
                if case .tensor = d { return .optional(d) }
                return d
            }))
        case (.optional, _): throw refuse(info.nonTensorType.map { "\($0)" } ?? "a tensor")
        case (.strings(let t), nil) where info.elementType == nil || info.elementType == .string:
            try checkShape(t.shape, against: info)
        case (.strings, _): throw refuse(info.nonTensorType.map { "\($0)" } ?? "a tensor of \(info.elementType?.name ?? "?")")
        }
    }

    static func check(_ t: MBTensor, against info: IRValueInfo) throws(MBRuntimeError) {
        if let declared = info.elementType {
            let expected = TensorConversion.runtimeType(of: declared) ?? declared
            guard t.elementType == expected else {
                throw MBRuntimeError(.invalidInput, "input '\(info.name)': expected \(declared.name), got \(t.elementType.name)")
            }
        }
        try checkShape(t.shape, against: info)
    }

    static func checkShape(_ shape: [Int], against info: IRValueInfo) throws(MBRuntimeError) {
        guard let dims = info.shape else { return }
        guard dims.count == shape.count else {
            throw MBRuntimeError(.invalidInput, "input '\(info.name)': expected \(dims.count) dimensions \(dims), got shape \(shape)")
        }
        for (i, d) in dims.enumerated() {
            if case .fixed(let n) = d, n != Int64(shape[i]) {
                throw MBRuntimeError(.invalidInput, "input '\(info.name)': dimension \(i) must be \(n), got shape \(shape)")
            }
        }
    }

    /// Per-node and per-operator times of the last run when `Options.profile` is set.
    public private(set) var lastProfile: MBProfile?

    /// Bytes of freed intermediate buffers the session keeps for the next run.
    public var pooledBytes: Int { pool.bytesHeld }

    /// Peak bytes of runtime-allocated tensors alive at once during the last run (intermediate
    /// values and outputs; constants and kernel scratch not included).
    public private(set) var lastPeakActivationBytes = 0
    /// Tensor buffers the last run had to allocate because the pool had none of that size free
    /// (0 in a steady state: the same model run again reuses every buffer).
    public private(set) var lastRunAllocations = 0
    /// Outputs the last run wrote over an input that died at that node.
    public private(set) var lastRunReusedBuffers = 0
    /// Concat inputs the last run did not copy: their producers wrote them straight into the
    /// Concat's output (from the second run of a shape on; see `ConcatPlacement`).
    public private(set) var lastRunConcatInputsInPlace = 0
}

/// Where a run spent its time.
public final class MBProfile: @unchecked Sendable {
    public private(set) var nodes: [(name: String, opType: String, nanoseconds: UInt64)] = []
    /// Whether `now` reads the calling thread's CPU time (else the wall clock).
    public let threadCPUTime: Bool

    init(threadCPUTime: Bool = false) { self.threadCPUTime = threadCPUTime }

    /// The profile's clock in nanoseconds.
    func now() -> UInt64 {
        guard threadCPUTime else { return DispatchTime.now().uptimeNanoseconds }
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    func add(_ step: Step, nanoseconds: UInt64) { nodes.append((step.name, step.opType, nanoseconds)) }

    /// Total time per operator type, largest first.
    public var byOperator: [(opType: String, nanoseconds: UInt64, count: Int)] {
        var totals: [String: (UInt64, Int)] = [:]
        for n in nodes { totals[n.opType, default: (0, 0)].0 += n.nanoseconds; totals[n.opType, default: (0, 0)].1 += 1 }
        return totals.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.1 > $1.1 }
    }
}
