import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MBCore
import MBFormat
import MBKernels

/// Binarized layers in the runtime: layers whose input is binarized at inference time (node attributes
/// `mb.activations.*`, written by the converter from a policy's `activations:`), and layers
/// whose binarized weights run from bit planes (packed mode).
///
/// Binarized inputs mean the same thing in both modes: the input tensor gets a Middle-Out mask
/// and residual levels (one scale per level for the whole tensor). Expanded mode then runs the
/// float kernels on x_hat; packed mode runs the AND/XOR-popcount kernel on both operands' planes.
enum BinarizedInput {
    /// The node's input binarization (MBFormat's `ActivationAttributes`), or nil when it has none.
    static func spec(_ n: NodeContext) throws -> ActivationSpec? {
        do {
            return try ActivationAttributes.decode(n.node.attributes)
        } catch {
            throw error.kind == .unsupported ? n.unsupported(error.message) : n.bad(error.message)
        }
    }

    /// x_hat for the float kernels: a Conv input (`conv`) or a matrix input as one tensor.
    static func expand(_ x: MBTensor, _ spec: ActivationSpec, conv: Bool, _ c: ExecutionContext) throws -> MBTensor {
        let values = x.buffer(Float.self)
        let xb: BinarizedValues
        if conv {
            xb = spec.binarizeConvInput(values, batch: x.shape[0], channels: x.shape[1], pixels: x.shape[2...].reduce(1, *))
        } else {
            let k = x.shape.last ?? 1
            xb = spec.binarizeMatrixInput(values, rows: x.count / max(k, 1), columns: k)
        }
        let y = try c.alloc(.float, x.shape)
        xb.dequantized(into: y.mutable(Float.self))
        return y
    }
}

/// How one binarized weight of a Conv/Gemm/MatMul with float inputs runs: from its compact
/// layout (decoded a tile at a time) or expanded to floats. Packed mode fixes the compact form;
/// auto mode measures at load (`measure`) and `GraphCompiler.resolveWeightChoices` decides for
/// every weight at once, within `MBModel.Options.maxWeightBytes`, before the first run.
final class WeightChoice: @unchecked Sendable {
    let node: String
    let weight: String
    let kind: BitPlaneMatrix.WeightKind
    /// Set before the first run and never changed after: exactly one of the three is non-nil.
    private(set) var compact: CompactPlanes?
    private(set) var expanded: MBTensor? { didSet { channelWeights = ConvChannelWeights() } }
    /// A Conv's expanded weights packed for the float convolution vectorised over output channels,
    /// made on the first run that takes that kernel: what a float model's Conv keeps (`ConvOps`),
    /// so the expanded form runs the float model's kernel. Renewed with `expanded`.
    private(set) var channelWeights = ConvChannelWeights()
    /// Auto mode, a Gemm/MatMul without a budget: bit planes for the lookup-table GEMV (AVX-512 /
    /// NEON), kept when its batch-1 product measured fastest of the three forms.
    private(set) var lut: BitPlaneMatrix?
    /// Auto mode, a Conv: the lookup-table convolution's layout, kept when its trial on the
    /// node's kernel, strides and padding (`measureConv`) beat the float convolution.
    private(set) var lutConv: LutConvWeights?
    /// A Conv with `MBModel.Options.convTables` `.int8`: the int8 lookup-table convolution's
    /// layout (auto mode: kept when its trial beat the float convolution; packed mode: always).
    private(set) var lutConv8: LutConvInt8Weights?
    /// Auto mode with int8 tables, a pointwise Conv decided at run time: the int8 dot-product
    /// convolution's sign planes (no per-position tables), a third form beside expanded and tables.
    private(set) var dotConv8: DotConvInt8Weights?
    private(set) var lutTrialNanoseconds: Double?
    /// Kept until the choice is made (auto mode), to expand from.
    private var source: PackedTensor?
    let compactBytes: Int
    let expandedBytes: Int
    /// Measured at load (auto mode): the time one run spends decoding every tile, and for a
    /// Gemm/MatMul a batch-1 product from each form; for a Conv the float convolution and the
    /// lookup-table one on a trial geometry (expanded / lookup-table trial).
    private(set) var decodeNanoseconds: Double = 0
    private(set) var packedTrialNanoseconds: Double?
    private(set) var expandedTrialNanoseconds: Double?

    /// `build: false` skips the compact form (auto mode without a budget, for a Conv: it would run
    /// the same float kernel after a decode, so it can only be slower); `compactBytes` is then 0.
    init(node: String, weight: String, packed: PackedTensor, kind: BitPlaneMatrix.WeightKind, keepSource: Bool, build: Bool = true) throws {
        self.node = node
        self.weight = weight
        self.kind = kind
        if build {
            let c = try CompactPlanes(packed: packed, kind: kind)
            compact = c
            compactBytes = c.residentBytes
        } else {
            // The same checks the compact form would make, so both modes claim the same weights.
            _ = try BitPlaneMatrix.checkSupported(packed: packed, kind: kind)
            compactBytes = 0
        }
        expandedBytes = packed.count * 4
        source = keepSource ? packed : nil
    }

    var isPacked: Bool { compact != nil || hasLut }
    var hasLut: Bool { lut != nil || lutConv != nil || lutConv8 != nil || dotConv8 != nil }
    var residentBytes: Int {
        if decidesAtRun { return (lutBytes ?? 0) + (expanded != nil ? expandedBytes : 0) + sourceBytes }
        return lutBytes ?? (compact != nil ? compactBytes : expandedBytes)
    }
    /// Bytes of the lookup-table forms (int8 dot products included; nil when there is none).
    var lutBytes: Int? {
        let forms = [lut?.residentBytes, lutConv?.residentBytes, lutConv8?.residentBytes, dotConv8?.residentBytes].compactMap { $0 }
        return forms.isEmpty ? nil : forms.reduce(0, +)
    }

    /// Times the decode of every tile (best of 3), and for a matrix the batch-1 product of each
    /// form on one thread (best of 5 after one warm-up each).
    func measure(withLut: Bool) throws {
        guard let compact, let source else { return }
        let tiles = BitPlaneScratch()
        let rowsPerTile = max(1, CompactPlanes.tileFloats / max(1, compact.columns))
        let tile = tiles.buffer(.decodedWeights, min(compact.rows, rowsPerTile) * compact.columns, as: Float.self)
        func best(_ n: Int, _ body: () -> Void) -> Double {
            var t = Double.infinity
            for _ in 0..<n {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start))
            }
            return t
        }
        decodeNanoseconds = best(3) {
            for r0 in stride(from: 0, to: compact.rows, by: rowsPerTile) {
                compact.decode(rows: r0..<min(compact.rows, r0 + rowsPerTile), into: tile, ldo: compact.columns)
            }
        }
        guard case .matrix(let transposed) = kind else { return }
        let k = compact.columns, n = compact.rows
        let w = source.dequantized()
        let x = (0..<k).map { Float(($0 * 7919) % 17) / 17 - 0.5 }
        var y = [Float](repeating: 0, count: n)
        packedTrialNanoseconds = best(6) { compact.multiply(a: x, m: 1, lda: k, y: &y, ldc: n, threads: 1, tiles: tiles) }
        expandedTrialNanoseconds = best(6) {
            Gemm.sgemm(transA: false, transB: transposed, m: 1, n: n, k: k, alpha: 1, a: x, lda: k, b: w, ldb: transposed ? k : n,
                       beta: 0, c: &y, ldc: n)
        }
        if withLut, BitPlaneMatrix.lutAvailable, let m = try? BitPlaneMatrix(packed: source, kind: kind) {
            lutTrialNanoseconds = best(6) { m.gemv(x: x, bias: nil, y: &y, threads: 1, scratch: tiles) }
            lut = m
        }
    }

    /// A Conv (auto mode): times the float convolution on the expanded weights and, when the
    /// weights fit the lookup-table convolution (one group, 1 or 2 spatial dimensions), that
    /// one, on `trial` (this node's kernel, strides, dilations and padding on a made-up input),
    /// one thread, best of 3 after a warm-up each.
    ///
    /// `atRun` (auto mode without a budget): no trial here; when the weights fit the tables the
    /// choice waits for the node's first run on each input shape (`convAtRun`), which times both
    /// forms on the real input. The made-up input's batch 1 and 256-4096 positions favour the
    /// tables more than the small maps and batches of real models do.
    func measureConv(trial g: ConvGeometry, int8: Bool = false, atRun: Bool = false) {
        guard let source, g.groups == 1 else { return }
        let m8 = int8 && LutConvInt8Weights.fastAvailable ? try? LutConvInt8Weights(packed: source, geometry: g) : nil
        convGeometry = g
        // Auto mode is the speed mode: codes held expanded (packed mode keeps the compact form;
        // auto over its budget goes back to it first, `compactLutCodes`).
        lut8CompactBytes = m8?.residentBytes
        m8?.expandCodes()
        let m = m8 != nil || !BitPlaneMatrix.lutAvailable ? nil : try? LutConvWeights(packed: source)
        // Pointwise Convs decided at run time also try the int8 dot products (lossy like the tables).
        let dot = atRun && int8 ? Self.dotForm(source, g) : nil
        guard m8?.fits(g) == true || m?.fits(g) == true || dot != nil else { return }
        if atRun {
            lutConv = m
            lutConv8 = m8
            dotConv8 = dot
            decidesAtRun = true
            return
        }
        let w = source.dequantized()
        let x = (0..<(g.batch * g.inChannels * g.inputSize)).map { Float(($0 * 7919) % 17) / 17 - 0.5 }
        var y = [Float](repeating: 0, count: g.batch * g.outChannels * g.outputSize)
        let scratch = KernelScratch(), tables = BitPlaneScratch()
        func best(_ body: () -> Void) -> Double {
            body()
            var t = Double.infinity
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start))
            }
            return t
        }
        // The float convolution as a float model runs it: with its channel-packed copy (made in the warm-up).
        let channelCopy = ConvChannelWeights()
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                expandedTrialNanoseconds = w.withUnsafeBufferPointer { wp in
                    best {
                        Conv.forward(.fast, g, input: xp.baseAddress!, weights: wp.baseAddress!, bias: nil, output: yp.baseAddress!, threads: 1,
                                     scratch: scratch, packedWeights: channelCopy)
                    }
                }
                lutTrialNanoseconds = best {
                    if let m8 {
                        m8.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: yp.baseAddress!, activation: .none, threads: 1, scratch: tables)
                    } else {
                        m?.forward(.fast, g, input: xp.baseAddress!, bias: nil, output: yp.baseAddress!, activation: .none, threads: 1, scratch: tables)
                    }
                }
            }
        }
        lutConv = m
        lutConv8 = m8
    }

    /// Auto mode with `MBModel.Options.lookupTableConvs`: no trial; the lookup tables when
    /// `lookupTables` and the weights fit them, else expanded.
    func pinConv(lookupTables: Bool, trial g: ConvGeometry, int8: Bool) {
        pinnedLut = false
        guard lookupTables, let source, g.groups == 1 else { return }
        convGeometry = g
        if int8, LutConvInt8Weights.fastAvailable, let m = try? LutConvInt8Weights(packed: source, geometry: g), m.fits(g) {
            lut8CompactBytes = m.residentBytes
            m.expandCodes()
            lutConv8 = m
        } else if !int8, BitPlaneMatrix.lutAvailable, let m = try? LutConvWeights(packed: source), m.fits(g) {
            lutConv = m
        } else {
            return
        }
        pinnedLut = true
    }
    private var pinnedLut: Bool?

    /// The int8 dot-product form of a pointwise Conv where this CPU has its AVX-512 VNNI body.
    private static func dotForm(_ source: PackedTensor, _ g: ConvGeometry) -> DotConvInt8Weights? {
        guard DotConvInt8Weights.fastAvailable, DotConvInt8Weights.accepts(source, g), let w = try? DotConvInt8Weights(packed: source), w.fits(g) else {
            return nil
        }
        return w
    }

    /// Bytes of the int8 tables' compact codes (auto mode holds them expanded).
    private(set) var lut8CompactBytes: Int?

    /// Auto mode over its budget: the int8 tables' compact codes instead of the expanded ones
    /// (the tables' speed less the per-run expansion, at about the file's bytes). Before `settle`.
    func compactLutCodes() {
        guard let source, let g = convGeometry, lutConv8?.codesExpanded == true, let m = try? LutConvInt8Weights(packed: source, geometry: g) else { return }
        lutConv8 = m
    }

    /// Packed mode with int8 Conv tables: the int8 lookup-table layout, compact (per-entry levels
    /// expanded a tile at a time per run), is the weight's only form.
    func adoptInt8(_ packed: PackedTensor, geometry g: ConvGeometry) throws {
        lutConv8 = try LutConvInt8Weights(packed: packed, geometry: g)
    }

    /// The Conv's geometry the table layout was chosen for (its kernel, strides and channels).
    private var convGeometry: ConvGeometry?

    /// Whether the lookup-table form measured fastest: for a Gemm/MatMul of the three forms, for
    /// a Conv against the float convolution (the compact form runs that after a decode).
    var lutMeasuredFastest: Bool {
        if let pinnedLut { return pinnedLut }
        if decidesAtRun { return true }
        guard let l = lutTrialNanoseconds, let e = expandedTrialNanoseconds else { return false }
        if lutConv != nil || lutConv8 != nil { return l < e }
        guard let p = packedTrialNanoseconds else { return false }
        return l < p && l < e
    }

    /// Whether the compact form measured faster than the float one (only a matrix can be: a
    /// Conv runs the same float kernel after its decode).
    var packedMeasuredFaster: Bool {
        guard let p = packedTrialNanoseconds, let e = expandedTrialNanoseconds else { return false }
        return p < e
    }

    /// Extra time per run the compact form costs against the form the weight has (`fromLut`:
    /// the lookup-table one, else expanded), per byte it saves (auto's budget order).
    func costPerByteSaved(fromLut: Bool) -> Double {
        let from = fromLut ? lutBytes ?? expandedBytes : expandedBytes
        let saved = Double(max(1, from - compactBytes))
        let e = expandedTrialNanoseconds
        let compactTime: Double? = packedTrialNanoseconds ?? e.map { $0 + decodeNanoseconds }
        if let c = compactTime, let f = fromLut ? lutTrialNanoseconds : e { return max(0, c - f) / saved }
        return decodeNanoseconds / saved
    }

    /// Keeps the compact form (`packed`) or expands to floats; drops the rest.
    func settle(packed: Bool, lut keepLut: Bool, maxTensorBytes: Int) throws {
        if decidesAtRun, keepLut, hasLut, let source {
            // Both forms until the first run decides; the source stays (about the file's bytes)
            // to rebuild the dropped form when another input shape decides again.
            compact = nil
            expanded = try Self.expand(source, weight, maxTensorBytes: maxTensorBytes)
            self.maxTensorBytes = maxTensorBytes
            return
        }
        decidesAtRun = false
        defer { source = nil }
        if keepLut, hasLut {
            compact = nil
            return
        }
        lut = nil
        lutConv = nil
        lutConv8 = nil
        dotConv8 = nil
        guard !packed, let source else { return }
        expanded = try Self.expand(source, weight, maxTensorBytes: maxTensorBytes)
        compact = nil
    }

    static func expand(_ source: PackedTensor, _ weight: String, maxTensorBytes: Int) throws -> MBTensor {
        try TensorConversion.tensor(from: IRTensor(name: weight, elementType: .float, shape: source.shape, storage: .binarized(source)),
                                    maxBytes: maxTensorBytes)
    }

    // MARK: Auto mode: a Conv decided at its first run on each input shape

    /// Auto mode without a budget or pinned choices, a Conv whose weights fit the lookup tables:
    /// the faster form is measured on the node's real input, once per input shape (the way
    /// cuDNN's benchmark mode picks a convolution algorithm).
    private(set) var decidesAtRun = false
    /// One input shape's decision: the forms' wall times on that input in the session's threads
    /// (best of 3 each). `checked`: the whole-model check (`MBSession`) has confirmed or reverted
    /// it; until then both forms stay resident. `reverted`: the layer trial chose the tables but
    /// the whole-model check found the run with them not faster than all-expanded.
    struct ShapeDecision {
        var input: [Int]
        var lookupTables: Bool
        var expandedNanoseconds: Double
        var lookupTableNanoseconds: Double
        /// The int8 dot products' time (nil: not tried); `dotProducts`: they won (`lookupTables` set too).
        var dotProductNanoseconds: Double? = nil
        var dotProducts = false
        var checked = true
        var reverted = false
    }
    private var decisions: [ShapeDecision] = []
    /// Whether the dot-product form was built (rebuilt for a new shape after being dropped).
    private var triesDotProducts = false
    private let decisionLock = DispatchSemaphore(value: 1)
    private var maxTensorBytes = 0

    /// The forms a Conv runs in (`PackedConvWeights.forward`).
    enum ConvForm {
        case lut8(LutConvInt8Weights)
        case lut(LutConvWeights)
        case dot8(DotConvInt8Weights)
        /// The expanded weights with their copy packed for the float kernel over output channels.
        case expanded(MBTensor, ConvChannelWeights)
    }

    private var lutForm: ConvForm? { lutConv8.map { .lut8($0) } ?? lutConv.map { .lut($0) } }

    /// The decided form for `shape`, or nil (undecided). `uncheckedExpanded`: a decision for the
    /// tables the whole-model check has not confirmed yet runs expanded (its all-expanded runs).
    private func decidedForm(_ shape: [Int], uncheckedExpanded: Bool) -> ConvForm? {
        guard let d = decisions.first(where: { $0.input == shape }) else { return nil }
        let tables = d.lookupTables && !(uncheckedExpanded && !d.checked)
        if tables && d.dotProducts { return dotConv8.map { .dot8($0) } }
        return tables ? lutForm : expanded.map { .expanded($0, channelWeights) }
    }

    /// Runs the Conv on an input of `shape` in its decided form (`run` writes the output); on the
    /// first run of a shape first times both forms on this input (`run` in the session's threads,
    /// wall clock, alternating, best of 3 each: the first run pays about six runs of the node) and
    /// chooses the tables for the shape when 5 % faster (`lutMargin`). A choice of the tables is
    /// unchecked until the session's whole-model check (`confirmUnchecked`) keeps or reverts it;
    /// both forms stay resident until then. Returns whether this call decided a shape.
    /// `scratchOutput` receives the losing trial's output; the winner's is in the output.
    func convAtRun(shape: [Int], uncheckedExpanded: Bool, lutMargin: Double, lutFits: (ConvForm) -> Bool,
                   run: (ConvForm, _ threads: Int, _ intoScratch: Bool) -> Void, keepScratch: () -> Void) throws -> Bool {
        decisionLock.wait()
        if let f = decidedForm(shape, uncheckedExpanded: uncheckedExpanded) {
            decisionLock.signal()
            run(f, 0, false)
            return false
        }
        defer { decisionLock.signal() }
        // Another shape may have dropped a form: rebuild it from the source.
        if let source {
            if expanded == nil { expanded = try Self.expand(source, weight, maxTensorBytes: maxTensorBytes) }
            if lutForm == nil, let g = convGeometry {
                if lut8CompactBytes != nil, let m = try? LutConvInt8Weights(packed: source, geometry: g) {
                    m.expandCodes()
                    lutConv8 = m
                } else {
                    lutConv = try? LutConvWeights(packed: source)
                }
            }
            if dotConv8 == nil, triesDotProducts, let g = convGeometry { dotConv8 = Self.dotForm(source, g) }
        }
        guard let e = expanded else { return false }
        let l = lutForm.flatMap { lutFits($0) ? $0 : nil }, dot = dotConv8.flatMap { lutFits(.dot8($0)) ? ConvForm.dot8($0) : nil }
        guard l != nil || dot != nil else {
            decisions.append(ShapeDecision(input: shape, lookupTables: false, expandedNanoseconds: 0, lookupTableNanoseconds: .infinity))
            run(.expanded(e, channelWeights), 0, false)
            dropUnused()
            return true
        }
        func time(_ body: () -> Void) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start)
        }
        // The session's threads and the wall clock: what a run pays, barrier waits and memory
        // stalls included (thread CPU time at one thread missed the helper threads). Alternating,
        // best of 3 each: neither form gets all the warm caches, a preempted trial does not count.
        var te = Double.infinity, tl = Double.infinity, td = Double.infinity
        for _ in 0..<3 {
            te = min(te, time { run(.expanded(e, channelWeights), 0, false) })
            if let l { tl = min(tl, time { run(l, 0, true) }) }
            if let dot { td = min(td, time { run(dot, 0, true) }) }
        }
        // The faster lossy form (tables or dot products) must win by `lutMargin`: near parity the
        // float form (exact) is kept, so a noisy trial cannot make a layer slower than float by
        // more than the noise. The scratch holds the output of the form that ran last (the dot
        // products when tried): the other winner runs once more.
        let useDot = td < tl
        let useLut = min(tl, td) < te * lutMargin
        if useLut {
            if useDot != (dot != nil), let winner = useDot ? dot : l { run(winner, 0, true) }
            keepScratch()
        }
        decisions.append(ShapeDecision(input: shape, lookupTables: useLut, expandedNanoseconds: te, lookupTableNanoseconds: tl,
                                       dotProductNanoseconds: dot == nil ? nil : td, dotProducts: useLut && useDot, checked: !useLut))
        if !useLut { dropUnused() }
        return true
    }

    /// The int8 dot products when they are the decided form for `shape` (nil: another form, or undecided).
    func decidedDot(_ shape: [Int], uncheckedExpanded: Bool) -> DotConvInt8Weights? {
        decisionLock.wait()
        defer { decisionLock.signal() }
        if case .dot8(let m)? = decidedForm(shape, uncheckedExpanded: uncheckedExpanded) { return m }
        return nil
    }

    /// Whether a decision for the tables waits for the whole-model check.
    var hasUnchecked: Bool {
        decisionLock.wait()
        defer { decisionLock.signal() }
        return decisions.contains { !$0.checked }
    }

    /// The whole-model check's verdict on the unchecked decisions: keep their tables, or run
    /// those shapes expanded (`reverted`); then drops the forms no decided shape uses.
    func confirmUnchecked(keepTables: Bool) {
        decisionLock.wait()
        defer { decisionLock.signal() }
        for i in decisions.indices where !decisions[i].checked {
            decisions[i].checked = true
            if !keepTables {
                decisions[i].lookupTables = false
                decisions[i].reverted = true
            }
        }
        dropUnused()
    }

    /// Drops the forms no decided shape chose (the source rebuilds them when a new shape comes).
    private func dropUnused() {
        if !decisions.contains(where: { $0.lookupTables && !$0.dotProducts }) {
            lutConv = nil
            lutConv8 = nil
        }
        if dotConv8 != nil { triesDotProducts = true }
        if !decisions.contains(where: { $0.lookupTables && $0.dotProducts }) { dotConv8 = nil }
        // An unchecked choice of the tables may still be reverted to expanded.
        if !decisions.contains(where: { !$0.lookupTables || !$0.checked }) { expanded = nil }
    }

    /// Bytes of the packed source kept for deciding at run time.
    private var sourceBytes: Int {
        guard decidesAtRun, let source else { return 0 }
        return source.mask.count + source.levels.reduce(0) { $0 + $1.signs.count * 8 + $1.scales.count * 4 + $1.activeCounts.count * 8 }
    }

    /// What `MBModel.weightChoices` reports.
    var report: MBModel.WeightChoice {
        decisionLock.wait()
        defer { decisionLock.signal() }
        return MBModel.WeightChoice(node: node, weight: weight, packed: isPacked, lookupTables: hasLut, residentBytes: residentBytes, compactBytes: compactBytes,
                                    expandedBytes: expandedBytes, decodeNanoseconds: decodeNanoseconds,
                                    packedTrialNanoseconds: packedTrialNanoseconds, expandedTrialNanoseconds: expandedTrialNanoseconds,
                                    lookupTableTrialNanoseconds: lutTrialNanoseconds, decidesAtRun: decidesAtRun,
                                    decisions: decisions.map {
                                        MBModel.WeightChoice.ShapeDecision(input: $0.input, lookupTables: $0.lookupTables,
                                                                           expandedNanoseconds: $0.expandedNanoseconds,
                                                                           lookupTableNanoseconds: $0.lookupTableNanoseconds,
                                                                           dotProductNanoseconds: $0.dotProductNanoseconds, dotProducts: $0.dotProducts,
                                                                           checked: $0.checked, revertedByModelCheck: $0.reverted)
                                    })
    }
}

/// Packed weights of one Gemm/MatMul: `y[m, n] = sum_k A[m, k] W[n, k]`. Float inputs run from
/// the weight's choice (compact tiles for the float GEMM, or expanded); binarized inputs from bit
/// planes (AND/XOR-popcount).
final class PackedMatrix: @unchecked Sendable {
    let choice: WeightChoice?
    let matrix: BitPlaneMatrix?
    let activations: ActivationSpec?
    let transposed: Bool
    let cache = GroupCache()
    let k: Int
    let n: Int

    init(_ packed: PackedTensor, transposed: Bool, activations: ActivationSpec?, _ ctx: NodeContext, input: Int) throws {
        self.transposed = transposed
        if activations == nil {
            let c = try ctx.weightChoice(packed, kind: .matrix(transposed: transposed), input: input)
            choice = c; matrix = nil; k = c.compact!.columns; n = c.compact!.rows
        } else {
            let m = try BitPlaneMatrix(packed: packed, kind: .matrix(transposed: transposed))
            choice = nil; matrix = m; k = m.tapChannels; n = m.rows
        }
        self.activations = activations
    }

    var residentBytes: Int { choice == nil ? matrix?.residentBytes ?? 0 : 0 }

    /// Rows of `a` ([m, k], contiguous) times the weights into `y` ([m, n]).
    func multiply(a: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>, _ c: ExecutionContext) {
        if let lut = choice?.lut {
            for r in 0..<m { lut.gemv(c.variant, x: a + r * k, bias: nil, y: y + r * n, threads: c.threads, scratch: c.bitScratch) }
        } else if let w = choice?.expanded {
            Gemm.parallel(c.variant, threads: c.threads, transA: false, transB: transposed, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                          b: w.pointer(Float.self), ldb: transposed ? k : n, beta: 0, c: y, ldc: n)
        } else if let compact = choice?.compact {
            compact.multiply(c.variant, a: a, m: m, lda: k, y: y, ldc: n, threads: c.threads, tiles: c.bitScratch)
        } else if let spec = activations, let matrix {
            let xb = spec.binarizeMatrixInput(UnsafeBufferPointer(start: a, count: m * k), rows: m, columns: k, cache: cache)
            let planes = ActivationPlanes(xb, units: m, unitChannels: k, base: 0, unitStride: k, channelStride: 1, scratch: c.bitScratch)
            let patches = c.bitScratch.buffer(.patches, m, as: Int32.self)
            for p in 0..<m { patches[p] = Int32(p) }
            matrix.binaryForward(c.variant, acts: planes, patches: patches, positions: m, bias: nil, relu: false,
                                 y: y, strideRow: 1, stridePos: n, threads: c.threads)
        }
    }
}

/// Packed weights of one Conv: for float inputs the weight's choice (compact tiles of output
/// channels decoded for the float convolution, its epilogue included; or expanded), bit planes
/// per group for binarized inputs.
final class PackedConvWeights: @unchecked Sendable {
    let shape: [Int]
    let groups: Int
    let layer: BinaryConvLayer?
    let choice: WeightChoice?
    /// Bit-plane bytes (binarized inputs); a choice reports its own.
    let residentBytes: Int

    /// A depthwise layer with binarized inputs: x_hat expanded, then the compact weights' float
    /// path (what expanded mode computes). Bit planes give each 1-channel tap a 64-bit word.
    let expandInput: ActivationSpec?

    /// `trial`: the node's convolution on a made-up input, for auto mode's measurements.
    init(_ packed: PackedTensor, groups: Int, activations: ActivationSpec?, _ ctx: NodeContext, input: Int, trial: ConvGeometry? = nil) throws {
        shape = packed.shape
        self.groups = groups
        let depthwise = groups > 1 && packed.shape.count >= 2 && packed.shape[1] == 1
        expandInput = depthwise ? activations : nil
        if let activations, !depthwise {
            let matrices = try (0..<groups).map { try BitPlaneMatrix(packed: packed, kind: .conv, group: $0, groups: groups) }
            layer = BinaryConvLayer(weights: matrices, activations: activations)
            choice = nil
            residentBytes = matrices.reduce(0) { $0 + $1.residentBytes }
        } else {
            choice = try ctx.weightChoice(packed, kind: .conv, input: input, convTrial: trial)
            layer = nil
            residentBytes = 0
        }
    }

    /// A Conv decided for the int8 dot products on `x`'s shape, with its residual Add and then
    /// `activation` fused into the kernel's store (one pass less over the output); nil when this
    /// Conv runs another form there (the caller adds the residual after `forward`).
    func forwardAddingResidual(_ g: ConvGeometry, x: MBTensor, bias: MBTensor?, residual: MBTensor, activation: Activation,
                               _ c: ExecutionContext) throws -> MBTensor? {
        guard layer == nil, expandInput == nil, let choice, choice.decidesAtRun, residual.elementType == .float,
              residual.shape == [g.batch, g.outChannels] + g.output,
              let m = choice.decidedDot(x.shape, uncheckedExpanded: c.uncheckedExpanded), m.fits(g) else { return nil }
        let out = try c.alloc(.float, [g.batch, g.outChannels] + g.output)
        m.forward(c.variant, g, input: x.pointer(Float.self), bias: bias?.pointer(Float.self), output: out.mutable(Float.self), activation: activation,
                  threads: c.threads, scratch: c.bitScratch, residual: residual.pointer(Float.self))
        return out
    }

    func forward(_ g: ConvGeometry, x: MBTensor, bias: MBTensor?, activation: Activation, _ c: ExecutionContext) throws -> MBTensor {
        let out = try c.alloc(.float, [g.batch, g.outChannels] + g.output)
        if let layer {
            layer.forward(g, input: x.pointer(Float.self), bias: bias?.pointer(Float.self), output: out.mutable(Float.self),
                          relu: activation == .relu, threads: c.threads, scratch: c.bitScratch, variant: c.variant)
            if activation != .relu && activation != .none { activation.apply(to: out.mutable(Float.self), count: out.count) }
            return out
        }
        let x = try expandInput.map { try BinarizedInput.expand(x, $0, conv: true, c) } ?? x
        if let choice, choice.decidesAtRun {
            // The losing trial's output goes to `trialOut`; a table winner's is copied over.
            var trialOut: [Float] = []
            let xp = x.pointer(Float.self), bp = bias?.pointer(Float.self), op = out.mutable(Float.self)
            let decided = try choice.convAtRun(shape: x.shape, uncheckedExpanded: c.uncheckedExpanded, lutMargin: c.lutMargin, lutFits: { form in
                switch form {
                case .lut8(let m): return m.fits(g)
                case .lut(let m): return m.fits(g)
                case .dot8(let m): return m.fits(g)
                case .expanded: return true
                }
            }, run: { form, threads, intoScratch in
                let t = threads == 0 ? c.threads : threads
                if intoScratch && trialOut.isEmpty { trialOut = [Float](repeating: 0, count: out.count) }
                trialOut.withUnsafeMutableBufferPointer { tp in
                    let y = intoScratch ? tp.baseAddress! : op
                    switch form {
                    case .lut8(let m):
                        m.forward(c.variant, g, input: xp, bias: bp, output: y, activation: activation, threads: t, scratch: c.bitScratch)
                    case .lut(let m):
                        m.forward(c.variant, g, input: xp, bias: bp, output: y, activation: activation, threads: t, scratch: c.bitScratch)
                    case .dot8(let m):
                        m.forward(c.variant, g, input: xp, bias: bp, output: y, activation: activation, threads: t, scratch: c.bitScratch)
                    case .expanded(let w, let channelWeights):
                        Conv.forward(c.variant, g, input: xp, weights: w.pointer(Float.self), bias: bp, output: y, activation: activation,
                                     threads: t, scratch: c.scratch, packedWeights: channelWeights)
                    }
                }
            }, keepScratch: {
                trialOut.withUnsafeBufferPointer { op.update(from: $0.baseAddress!, count: out.count) }
            })
            if decided { c.decidedChoices.append(choice) }
            return out
        }
        if let lut = choice?.lutConv8 {
            lut.forward(c.variant, g, input: x.pointer(Float.self), bias: bias?.pointer(Float.self), output: out.mutable(Float.self),
                        activation: activation, threads: c.threads, scratch: c.bitScratch)
        } else if let lut = choice?.lutConv {
            lut.forward(c.variant, g, input: x.pointer(Float.self), bias: bias?.pointer(Float.self), output: out.mutable(Float.self),
                        activation: activation, threads: c.threads, scratch: c.bitScratch)
        } else if let choice, let w = choice.expanded {
            Conv.forward(c.variant, g, input: x.pointer(Float.self), weights: w.pointer(Float.self), bias: bias?.pointer(Float.self),
                         output: out.mutable(Float.self), activation: activation, threads: c.threads, scratch: c.scratch,
                         packedWeights: choice.channelWeights)
        } else if let compact = choice?.compact {
            compact.convForward(c.variant, g, input: x.pointer(Float.self), bias: bias?.pointer(Float.self), output: out.mutable(Float.self),
                                activation: activation, threads: c.threads, scratch: c.scratch, tiles: c.bitScratch)
        }
        return out
    }
}
