import Foundation
import MBCore
import MBFormat
import MBPolicy

/// How much memory a conversion may use for the tensors it works on (`--max-memory`), and how
/// much each tensor needs.
///
/// What a tensor needs is counted from what the pipeline allocates for it, not measured: the
/// source bytes that are resident at once (a mapped source is read in pieces that are released
/// as they are converted; other storage counts whole), and for a binarized tensor
/// `binarizeBytes` (see there). The budget bounds the sum over the tensors in flight; the fixed
/// part of the process (code, the graph, the policy, the reduced protobuf: about 30 MB) comes on top.
public enum MemoryBudget {
    /// Default budget: half of physical memory.
    public static var defaultBytes: Int { Int(ProcessInfo.processInfo.physicalMemory / 2) }

    /// Working memory in flight when no budget is given: what the largest tensor needs (at
    /// least `defaultFloor`), at most `defaultBytes`. Two large tensors are then not binarized
    /// at once, so the peak follows the largest tensor rather than the two largest; a model of
    /// small tensors keeps every worker busy. `--max-memory` raises it.
    static func defaultWorkingBytes(largestNeed: Int) -> Int {
        min(defaultBytes, max(largestNeed, defaultFloor))
    }

    /// 64 MiB: below it, tensors are small enough to convert side by side on every worker.
    static let defaultFloor = 64 << 20

    /// Bytes a binarization of `n` elements with `plan` holds at once. Per element:
    /// - 4: the float copy of T, which every level reads (the source is not held beside it);
    /// - 1: the mask;
    /// - B/4: the sign bits (B = average bits), as written and as stored;
    /// - 4 x (entries past level 1): HBB's residuals, kept only for the entries still active
    ///   (which ones is read off the mask; 1.4-bit 70/20/10: 1.2; homogeneous: 4). With channel
    ///   scales they are per channel, so they count once for the largest channel;
    /// - 1/4: the selection's boundary candidates (the statistics reuse T and the mask; the
    ///   encoded payload is made after T is dropped);
    /// - 10 more when channel scales are on an inner axis (group-major copies of T and the
    ///   mask, and the reconstruction the statistics compare against), 12 more for the refits
    ///   and structured masks (their own working arrays; a bound, not measured).
    static func binarizeBytes(_ plan: ConversionPlan, shape: [Int], elements n: Int) -> Int {
        guard case .binarize(let b) = plan.decision.action, let mix = plan.mix, n > 0 else { return 16 * n }
        let pastLevel1 = mix.used.filter { $0.bits > 1 }.reduce(0) { $0 + $1.fraction }
        let scale = ScaleMode(b.scale, channelAxis: plan.tensor.outputAxis ?? 0)
        let layout = try? GroupLayout(shape: shape, scale: scale)
        let groupSize = layout?.groupSize ?? n
        let activeBytes = 4 * pastLevel1 * Double(groupSize)
        var perElement = 4 + 1 + mix.averageBits / 4 + 0.25
        if layout?.isIdentity == false { perElement += 10 }
        if b.refit != .off || b.granularity != .element { perElement += 12 }
        return Int((perElement * Double(n) + activeBytes).rounded(.up))
    }

    /// Parses a size: a number of bytes, or a number with K, M, G or T (powers of 1024), e.g.
    /// `2G`, `512M`, `1.5G`. Nil when it is not a positive size.
    public static func parse(_ text: String) -> Int? {
        var digits = text.trimmingCharacters(in: .whitespaces)
        var unit = 1.0
        if let last = digits.last?.uppercased(), let power = ["K": 1, "M": 2, "G": 3, "T": 4][last] {
            unit = pow(1024, Double(power))
            digits.removeLast()
            if digits.hasSuffix("i") || digits.hasSuffix("I") { digits.removeLast() }
        } else if digits.uppercased().hasSuffix("IB") || digits.uppercased().hasSuffix("B") {
            return parse(String(digits.dropLast(digits.uppercased().hasSuffix("IB") ? 2 : 1)))
        }
        guard let value = Double(digits), value > 0, value.isFinite, value * unit < 9e18 else { return nil }
        return Int(value * unit)
    }

    /// A size as `--max-memory` accepts it, rounded up: to a whole MiB from 64 MiB ("605M",
    /// "2G"), else to a whole KiB ("320K").
    public static func describe(_ bytes: Int) -> String {
        if bytes >= 64 << 20 {
            let mib = (bytes + (1 << 20) - 1) >> 20
            return mib % 1024 == 0 ? "\(mib / 1024)G" : "\(mib)M"
        }
        let kib = (bytes + 1023) >> 10
        return kib % 1024 == 0 ? "\(kib / 1024)M" : "\(kib)K"
    }

    /// What a binarized tensor holds from its conversion until it is written: the mask (a byte
    /// per element), the sign words, and its encoding (at most a byte per element for the coded
    /// mask, plus the signs again). Nil for other storage (their charge stays as counted).
    static func heldBytes(_ t: IRTensor) -> Int? {
        guard case .binarized(let p) = t.storage else { return nil }
        let signs = p.levels.reduce(0) { $0 + 8 * $1.signs.count + 8 * $1.scales.count + 8 * $1.activeCounts.count }
        return 2 * p.mask.count + 2 * signs
    }

    /// Working memory for converting (or copying) one constant.
    static func workingBytes(_ plan: ConversionPlan?, _ t: IRTensor) -> Int {
        let source: Int
        switch t.storage {
        case .dense(let bytes): source = bytes.count
        case .strings(let list): source = list.reduce(0) { $0 + $1.count }
        case .binarized, .quantized: source = 0
        }
        guard let plan else { return source }
        let n = t.elementCount
        // A mapped source is read into the float copy in released pieces (`Conversion.floatValues`).
        var pieces = source
        if case .dense(let bytes) = t.storage, bytes.isFileMapping, !t.shape.isEmpty { pieces = min(source, Conversion.sourcePieceBytes) }
        switch plan.decision.action {
        case .keep(let type):
            if Conversion.passesThrough(t, keep: type) { return source }
            return pieces + 4 * n + type.traits.bitsPerElement * n / 8
        case .binarize:
            return pieces + binarizeBytes(plan, shape: t.shape, elements: n)
        case .quantize:
            return pieces + 16 * n
        }
    }
}

extension Conversion {
    /// Converts the graph's constants in the order the `.mbm` stores them and appends each to
    /// `stream` as soon as it and every tensor before it are done, so only the tensors in
    /// flight are held (at most `budget` bytes of working memory, by `MemoryBudget`'s count).
    /// `threads` workers take tensors in order; a worker waits while the next tensor would
    /// overrun the budget and another is still in flight. Each tensor's pages of the mapped
    /// model are released once it is written, and its converted form dropped (a binarized
    /// tensor's mask alone is a byte per element). Returns the report rows of the planned
    /// tensors, in plan order.
    static func stream(
        _ prepared: Prepared, tensors: [IRTensor], into stream: MBMWriter.Stream, budget: Int, threads: Int,
        progress: (@Sendable (Progress) -> Void)?, converted: ConvertedSpill? = nil
    ) throws -> [ConversionReport.Layer] {
        try self.stream(prepared, tensors: tensors, budget: budget, threads: threads, progress: progress, converted: converted) { _, stored, _ in
            try stream.append(stored)
        }
    }

    /// `stream` with each converted tensor handed to `sink` (tensor number, stored form, and the
    /// outcome of a planned tensor) in order, one call at a time, then dropped: `verify` compares
    /// instead of writing. A tensor `converted` holds (converted during a segmented calibration)
    /// is read back from it instead of converted again; its charge is what it holds read back.
    static func stream(
        _ prepared: Prepared, tensors: [IRTensor], budget: Int, threads: Int, progress: (@Sendable (Progress) -> Void)?,
        converted: ConvertedSpill? = nil,
        sink: @escaping @Sendable (Int, StoredTensor, LayerOutcome?) throws -> Void
    ) throws -> [ConversionReport.Layer] {
        var planOf: [String: Int] = [:]
        for (i, p) in prepared.plans.enumerated() { planOf[p.tensor.name] = i }
        // Only top-level constants are planned; attribute and subgraph tensors are copied.
        let topLevel = prepared.graph.constants.count
        let planned: [ConversionPlan?] = tensors.indices.map { j in
            guard j < topLevel, let i = planOf[tensors[j].name] else { return nil }
            return prepared.plans[i]
        }
        func plan(_ j: Int) -> ConversionPlan? { planned[j] }
        let need = tensors.indices.map { j in
            if planned[j] != nil, let held = converted?.heldBytes(tensors[j].name) { return held }
            return MemoryBudget.workingBytes(planned[j], tensors[j])
        }
        if let worst = need.indices.max(by: { need[$0] < need[$1] }), need[worst] > budget {
            let t = tensors[worst]
            let what = plan(worst).map { p -> String in
                if case .binarize = p.decision.action { return "binarize its \(t.elementCount) elements" }
                return "convert its \(t.elementCount) elements"
            } ?? "copy it"
            throw ConversionError("tensor '\(t.name)' needs \(MemoryBudget.describe(need[worst])) to \(what), more than the memory budget of \(MemoryBudget.describe(budget)); pass --max-memory \(MemoryBudget.describe(need[worst])) or more")
        }
        let plannedSource = prepared.plans.reduce(0) { total, p in
            guard let c = prepared.constantIndex[p.tensor.name] else { return total }
            if case .dense(let b) = prepared.graph.constants[c].storage { return total + b.count }
            return total
        }
        let state = StreamState(count: tensors.count, plans: prepared.plans.count)
        let policy = prepared.policy
        let workers = max(1, min(threads, tensors.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let j = state.admit(need: need, budget: budget) {
                let result = Result { () throws -> (StoredTensor, Conversion.LayerOutcome?) in
                    guard let p = planned[j] else { return (MBMWriter.stored(tensors[j]), nil) }
                    if let spilled = try converted?.outcome(named: tensors[j].name) {
                        // Converted once already, while the calibration ran: the same tensor, read back.
                        if case .dense(let bytes) = tensors[j].storage { bytes.releaseResidentPages() }
                        return (MBMWriter.stored(spilled.tensor), spilled)
                    }
                    let outcome = try convert(p, constant: tensors[j], policy: policy)
                    // The float copy and the binarizer's work are gone: only the packed form is
                    // held until it is written, so the next tensor may start while it is encoded.
                    if let held = MemoryBudget.heldBytes(outcome.tensor) { state.shrink(j, to: held) }
                    return (MBMWriter.stored(outcome.tensor), outcome)
                }
                // The tensor written is the next in order (`k`), not necessarily this worker's.
                state.finish(j, result) { k, item in
                    try sink(k, item.0, item.1)
                    if case .dense(let bytes) = tensors[k].storage { bytes.releaseResidentPages() }
                } written: { item, done, bytesDone in
                    guard let progress, let outcome = item.1 else { return }
                    progress(Progress(done: done, total: prepared.plans.count, tensor: outcome.name, bytes: outcome.storedBytes,
                                      sourceBytesDone: bytesDone, sourceBytesTotal: plannedSource))
                }
            }
        }
        if let failure = state.failure {
            if let e = failure as? MBMError { throw ConversionError(e) }
            throw failure
        }
        var rows = [ConversionReport.Layer?](repeating: nil, count: prepared.plans.count)
        for (name, row) in state.rows { rows[planOf[name]!] = row }
        return rows.compactMap { $0 }
    }

    /// Whether a kept tensor is stored with its source bytes as they are (float32 kept float32).
    static func passesThrough(_ t: IRTensor, keep type: ElementType) -> Bool {
        guard case .dense = t.storage else { return false }
        return type == .float && t.elementType == .float
    }
}

/// The shared state of `Conversion.stream`'s workers: which tensor is next, the working memory
/// in flight, finished tensors waiting for their turn to be written, the first failure.
private final class StreamState: @unchecked Sendable {
    private let condition = NSCondition()
    private var next = 0
    private var inFlight = 0
    private var nextToWrite = 0
    private var writing = false
    private var finished: [Int: Result<(StoredTensor, Conversion.LayerOutcome?), Error>] = [:]
    private var plannedDone = 0
    private var sourceDone = 0
    private let count: Int
    private var charges: [Int: Int] = [:]
    private(set) var failure: Error?
    /// Report rows of the planned tensors written so far (the tensors themselves are dropped).
    private(set) var rows: [(name: String, row: ConversionReport.Layer)] = []

    init(count: Int, plans: Int) {
        self.count = count
        rows.reserveCapacity(plans)
    }

    /// The next tensor to work on, once its working memory fits beside what is in flight (or
    /// nothing is); nil when every tensor is taken or something failed.
    func admit(need: [Int], budget: Int) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        while failure == nil, next < count, inFlight > 0, inFlight + need[next] > budget { condition.wait() }
        guard failure == nil, next < count else { return nil }
        let j = next
        next += 1
        inFlight += need[j]
        charges[j] = need[j]
        return j
    }

    /// Lowers tensor `j`'s charge to `bytes` (what it holds once converted), letting waiting
    /// workers take the next tensor if it now fits.
    func shrink(_ j: Int, to bytes: Int) {
        condition.lock()
        defer { condition.unlock() }
        guard let charged = charges[j], bytes < charged else { return }
        charges[j] = bytes
        inFlight -= charged - bytes
        condition.broadcast()
    }

    /// Records tensor `j`'s result and writes every finished tensor whose turn has come, one
    /// writer at a time (whoever finds the next one finished), releasing their memory.
    func finish(
        _ j: Int, _ result: Result<(StoredTensor, Conversion.LayerOutcome?), Error>,
        write: (Int, (StoredTensor, Conversion.LayerOutcome?)) throws -> Void,
        written: ((StoredTensor, Conversion.LayerOutcome?), Int, Int) -> Void
    ) {
        condition.lock()
        defer { condition.unlock() }
        finished[j] = result
        while failure == nil, !writing, let r = finished.removeValue(forKey: nextToWrite) {
            let k = nextToWrite
            writing = true
            condition.unlock()
            var problem: Error?
            var item: (StoredTensor, Conversion.LayerOutcome?)?
            do {
                item = try r.get()
                try write(k, item!)
            } catch {
                problem = error
            }
            condition.lock()
            writing = false
            if let problem {
                failure = failure ?? problem
            } else if let item {
                if let outcome = item.1 {
                    rows.append((outcome.name, outcome.row))
                    plannedDone += 1
                    sourceDone += outcome.sourceBytes
                    let (done, bytes) = (plannedDone, sourceDone)
                    condition.unlock()
                    written(item, done, bytes)
                    condition.lock()
                }
            }
            inFlight -= charges.removeValue(forKey: k) ?? 0
            nextToWrite += 1
            condition.broadcast()
        }
        if failure != nil { condition.broadcast() }
    }
}
