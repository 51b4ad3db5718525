import Foundation
import MBBinarize
import MBCore
import MBFormat
import MBRuntime

/// `mbconvert verify model.onnx model.mbm`: round-trip validation of a conversion.
/// 1. File integrity: every checksum, and the source model's SHA-256 recorded at conversion.
/// 2. Every byte that affects results: the conversion is done again from the ONNX model with
///    the policy stored in the file (and the calibration corrections it records), and the stored
///    model must equal that result exactly: binarized weights (masks, signs and scales bit for
///    bit), kept float32/float16 tensors, biases, BatchNormalization parameters, folded
///    constants, calibrated tensors and nodes, every node and attribute, the graph's inputs and
///    outputs and the opsets. A difference names the tensor (or node) and its first differing
///    element.
/// 3. Outputs: the float model and the converted one, both run by our runtime on the same
///    inputs: per output max abs error, cosine similarity, SQNR, and top-1 agreement for
///    classifier-shaped outputs ([batch, classes]); NaN or infinity in a converted output where
///    the float model has none is a failure.
public enum Verify {
    public struct Options: Sendable {
        /// NAME=file.npy pairs, fed as they are (a batch is one file).
        public var inputs: [String] = []
        /// Evaluation inputs: a .npy file (one-input models) or a folder (`<input name>.npy` or
        /// `input_N.npy` per input; for one-input models any .npy files, run as one batch).
        public var inputsDirectory: String?
        /// Seeded random inputs (standard normal floats) of this batch size, when no inputs are given.
        public var random: Int?
        /// Concrete sizes for symbolic or unknown input dimensions, NAME=d0,d1,... (random inputs).
        public var shapes: [String] = []
        public var threads = 1
        public var minCosine: Double?
        public var minTop1: Double?
        public var seed: UInt64 = 0
        /// Also run `LayerDiagnostic` (each converted layer alone, and every prefix) on the inputs.
        public var perLayer = false
        /// Working memory for the recomputed conversion (`MemoryBudget`; nil: half of physical memory).
        public var maxMemory: Int?
        public init() {}
    }

    public struct WeightCheck: Codable, Sendable {
        public var name: String
        public var encoding: String
        /// The stored tensor equals the recomputation from the ONNX weights.
        public var identical: Bool
        public var detail: String?
        public var normalizedError: Double?
    }

    public struct OutputCheck: Codable, Sendable {
        public var name: String
        public var shape: [Int]
        public var maxAbsError: Double
        public var cosine: Double
        public var sqnrDB: Double
        /// Fraction of rows whose argmax agrees, for [batch, classes] outputs.
        public var top1Agreement: Double?
        public var rows: Int?
        /// Top-1 agreement over the rows whose float top-2 probabilities (softmax of the row when
        /// it is not already a distribution) are at least `marginThreshold` apart.
        public var marginAgreement: Double?
        public var marginRows: Int?
    }

    public struct Report: Codable, Sendable {
        public var onnx: String
        public var mbm: String
        public var checksums: String
        public var sourceMatches: Bool
        public var weights: [WeightCheck]
        public var outputs: [OutputCheck]
        public var inputs: String
        public var failures: [String]
        /// Nodes and constants of the stored graph compared with the recomputed conversion.
        public var nodesChecked = 0
        public var constantsChecked = 0
        /// Where the stored model differs from the recomputed conversion (empty when identical).
        public var modelDifferences: [String] = []
        /// `--per-layer`: each converted layer alone and every prefix, worst first.
        public var perLayer: [LayerDiagnostic.Row]?
        /// Segments the float and the stored model ran in, when they did not fit the memory
        /// budget whole (nil: each ran whole).
        public var outputSegments: [Int]?
        public var passed: Bool { failures.isEmpty }
    }

    public static func run(onnx: String, mbm: String, options: Options) throws -> Report {
        var failures: [String] = []
        // 1. Integrity: header, section table, every checksum (read page by page and released),
        // the directory and the graph. No payload is decoded here: each stored tensor is decoded
        // when it is compared or run and dropped after, so memory follows the tensors in use.
        let file = try MBMFile.openLazily(path: mbm)
        let budget = options.maxMemory ?? MemoryBudget.defaultBytes
        let sourceSHA = try sha256(ofFile: onnx)
        var sourceMatches = true
        if case .bytes(let recorded)? = file.metadataValue(MetadataKey.sourceSHA256) {
            sourceMatches = recorded == sourceSHA
            if !sourceMatches {
                failures.append("\(mbm) was converted from a model with SHA-256 \(SHA256.hex(recorded)), not \(onnx) (\(SHA256.hex(sourceSHA)))")
            }
        }
        // A stored tensor decoded beside its recomputation: the largest one counts against the budget.
        let largestDecoded = file.entries.map(\.decodedBytes).max() ?? 0
        var preparedFirst: Conversion.Prepared?
        if sourceMatches, case .string(let policyText)? = file.metadataValue(MetadataKey.policyText) {
            let policyName: String
            if case .string(let n)? = file.metadataValue(MetadataKey.policyFile) { policyName = n } else { policyName = "policy" }
            let prepared = try Conversion.prepare(model: onnx, policyBytes: Array(policyText.utf8), policyFile: "\(mbm) (embedded \(policyName))", strict: false)
            let planOf = Dictionary(prepared.plans.map { ($0.tensor.name, $0) }, uniquingKeysWith: { a, _ in a })
            if let (name, need) = prepared.graph.constants.lazy.map({ ($0.name, MemoryBudget.workingBytes(planOf[$0.name], $0)) }).max(by: { $0.1 < $1.1 }),
               need + largestDecoded > budget {
                let decoded = largestDecoded > 0 ? " and compares it with a stored tensor decoded (up to \(MemoryBudget.describe(largestDecoded)))" : ""
                throw ConversionError("\(mbm): verify converts tensor '\(name)' again in \(MemoryBudget.describe(need))\(decoded): more than the memory budget of \(MemoryBudget.describe(budget)); pass --max-memory \(MemoryBudget.describe(need + largestDecoded)) or more")
            }
            preparedFirst = prepared
        }
        // The output check's plan, refused here when one node's weights alone are over the budget.
        let outputPlan = try OutputPlan(onnx: onnx, mbm: mbm, file: file, budget: budget, threads: options.threads)
        if options.perLayer, !outputPlan.whole {
            throw ConversionError("\(mbm): --per-layer runs the float model whole, whose weights (\(MemoryBudget.describe(outputPlan.floatBytes))) and the stored model's (\(MemoryBudget.describe(outputPlan.storedBytes))) are more than the memory budget of \(MemoryBudget.describe(budget)); pass --max-memory \(MemoryBudget.describe(max(outputPlan.floatBytes, outputPlan.storedBytes))) or more")
        }

        // 2. Weights, recomputed with the policy the file carries.
        var weights: [WeightCheck] = []
        var modelDifferences: [String] = [], nodesChecked = 0, constantsChecked = 0
        var diagnosticBase: (prepared: Conversion.Prepared, corrections: [Calibration.StoredCorrection])?
        if var prepared = preparedFirst {
            if prepared.policy.target?.allocate == .sensitivity {
                // The spread depended on calibration inputs the file does not carry: take each
                // target layer's P from the layer statistics recorded at conversion.
                guard case .json(let text)? = file.metadataValue(MetadataKey.layerStatistics),
                      let layers = try? Inspect.jsonDecoder().decode([ConversionReport.Layer].self, from: Data(text.utf8)) else {
                    throw ConversionError("\(mbm): 'allocate: sensitivity' needs the layer statistics the file should record; they are missing")
                }
                Sensitivity.useRecordedMixes(&prepared, layers: layers)
            }
            // The stored graph's constants: raw ones are views of the map, the others stand-ins
            // (name, type, shape) for a payload decoded when it is compared.
            let stored = Dictionary(file.model.graph.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            // `fit: output` weights depend on calibration inputs the file does not carry: their
            // stored form is checked for what the policy fixes (shape, bit widths) and then taken
            // as it is, so the rest of the model is still compared exactly.
            var fitted: [String: IRTensor] = [:]
            for plan in prepared.plans {
                guard case .binarize(let b) = plan.decision.action, b.fit.fitsOutput else { continue }
                let name = plan.tensor.name
                guard let shell = stored[name], case let s = try file.resolve(shell), case .binarized(let packed) = s.storage else {
                    failures.append("constant '\(name)': 'fit: output' expects a binarized tensor in the file")
                    continue
                }
                let maxBits = plan.mix?.used.last?.bits ?? PackedTensor.maxLevels
                if s.shape != plan.tensor.shape || packed.levels.count > maxBits || packed.mask.contains(where: { Int($0) > maxBits }) {
                    failures.append("constant '\(name)': fitted to the output, but its shape \(s.shape) or bit widths (up to \(packed.levels.count)) do not match the policy (\(plan.tensor.shape), up to \(maxBits))")
                    continue
                }
                // A structured mask (Middle-Out's or saliency's) is fixed up to which groups get
                // which width: one width per group, P's number of groups per width.
                if b.granularity != .element, let mix = plan.mix, let groups = try Conversion.maskGroups(plan, shape: s.shape, granularity: b.granularity),
                   let problem = Binarizer.structuredMaskProblem(packed.mask, layout: packed.layout, groups: groups, wholeTensor: b.granularity == .channel,
                                                                 bits: mix.entries.map(\.bits), fractions: mix.entries.map(\.fraction)) {
                    failures.append("constant '\(name)': fitted to the output with granularity \(b.granularity), but its mask is not one the policy allows: \(problem)")
                    continue
                }
                fitted[name] = shell
            }
            // The conversion done again tensor by tensor within the memory budget, as `mbconvert`
            // streams it: each result is compared with the stored tensor, decoded for the
            // comparison, and both are dropped. The stored tensor (or its stand-in) then stands
            // in for the result in the model compared below; a stand-in that differs is reported
            // here, as the model comparison would.
            let checks = WeightChecks(plans: prepared.plans, constants: prepared.graph.constants)
            let taken = fitted
            _ = try Conversion.stream(prepared, tensors: prepared.graph.constants, budget: budget - largestDecoded,
                                      threads: max(1, ProcessInfo.processInfo.activeProcessorCount), progress: nil) { j, _, outcome in
                guard let outcome else { return }
                var check = WeightCheck(name: outcome.name, encoding: outcome.row.encoding, identical: false, detail: nil,
                                        normalizedError: outcome.row.normalizedError)
                var standIn = outcome.tensor
                var failure: String?
                if let s = taken[outcome.name] {
                    check.detail = "fitted to calibration data (stored values taken; shape and bit widths checked)"
                    standIn = s
                } else if let shell = stored[outcome.name] {
                    check.detail = ModelComparison.tensor(outcome.tensor, try file.resolve(shell))
                    check.identical = check.detail == nil
                    if check.identical {
                        standIn = shell
                    } else if case .dense(let b) = shell.storage, b.count == 0, shell.elementCount > 0 {
                        standIn = shell
                        failure = "model: constant '\(outcome.name)': \(check.detail!)"
                    }
                } else {
                    check.detail = "missing from the .mbm"
                }
                checks.record(check, constant: j, standIn, failure: failure)
            }
            weights = checks.checks
            failures += checks.failures
            // The whole model the conversion must have produced, compared with the stored one.
            var expected = prepared.graph
            expected.constants = checks.constants
            expected = ActivationAttributes.apply(prepared.plans, to: expected)
            diagnosticBase = (prepared, [])
            if let recorded = try CalibrationRecord.read(metadata: file.metadata, path: mbm) {
                if let (index, problem) = recorded.enumerated().lazy.compactMap({ e in e.element.problem.map { (e.offset, $0) } }).first {
                    throw ConversionError("\(mbm): metadata 'calibration', correction \(index) ('\(recorded[index].output)'): \(problem)")
                }
                expected = Calibration.apply(recorded, to: expected)
                diagnosticBase?.corrections = recorded
            }
            let differences = ModelComparison.differences(expected: IRModel(graph: expected, opsets: prepared.opsets), stored: file.model)
            modelDifferences = checks.failures.map { String($0.dropFirst("model: ".count)) } + differences
            nodesChecked = file.model.graph.nodes.count
            constantsChecked = file.model.graph.constants.count
            failures += differences.map { "model: " + $0 }
            if !modelDifferences.isEmpty, file.metadataValue(MetadataKey.calibration) == nil, file.metadataValue(CalibrationRecord.key) == nil,
               file.model.graph.constants.contains(where: { $0.name.contains(".calibrat") }) {
                failures.append("\(mbm) holds calibrated layers but does not record their corrections (written by an mbconvert before they were recorded); convert it again to verify it")
            }
        } else if sourceMatches {
            failures.append("\(mbm) carries no policy text; weights cannot be recomputed")
        }

        // 3. Outputs: the float model and the stored one on the same inputs, one model in memory
        // at a time. Whole when a model's weights fit the budget; else in segments of
        // consecutive nodes whose weights fit (`ModelRunner`), the stored tensors of a segment
        // decoded for it and dropped after it.
        let (feeds, described, a, b, outputNames, segments) = try outputPlan.run(options: options)
        var outputs: [OutputCheck] = []
        for name in outputNames {
            guard let x = a[name], let y = b[name] else {
                failures.append("output '\(name)' missing from a run")
                continue
            }
            let check = compare(name, x, y)
            outputs.append(check)
            if x.elementType == .float, y.elementType == .float, x.floats.allSatisfy(\.isFinite),
               let bad = y.floats.firstIndex(where: { !$0.isFinite }) {
                failures.append("output '\(name)': \(y.floats.filter { !$0.isFinite }.count) non-finite values (first at flat index \(bad): \(y.floats[bad])) where the float model has none")
            }
            if let min = options.minCosine, check.cosine < min {
                failures.append(String(format: "output '%@': cosine %.6f < --min-cosine %.6f", name, check.cosine, min))
            }
            if let min = options.minTop1, let t = check.top1Agreement, t < min {
                failures.append(String(format: "output '%@': top-1 agreement %.4f < --min-top1 %.4f", name, t, min))
            }
        }
        var report = Report(onnx: onnx, mbm: mbm, checksums: "verified", sourceMatches: sourceMatches, weights: weights,
                            outputs: outputs, inputs: described, failures: failures)
        if options.perLayer {
            guard let base = diagnosticBase else {
                throw ConversionError("\(mbm): --per-layer swaps the stored layers into the float model, which needs the source model the file was converted from and the policy it carries")
            }
            report.perLayer = try LayerDiagnostic.run(prepared: base.prepared, stored: file.decodeAll().model, corrections: base.corrections,
                                                      feeds: feeds, threads: options.threads)
        }
        report.outputSegments = segments
        report.nodesChecked = nodesChecked
        report.constantsChecked = constantsChecked
        report.modelDifferences = modelDifferences
        return report
    }

    /// The SHA-256 of a file, read through its map in pieces whose pages are released: a large
    /// embedded model is not left resident by its fingerprint.
    static func sha256(ofFile path: String) throws -> [UInt8] {
        BackgroundHash.sha256(of: try FileMapping.map(path: path), piece: 64 << 20)
    }

    /// How the output check runs the float model and the stored one: whole, as `mbconvert run`
    /// would, when each model's weights fit the budget (counted as `ModelRunner` counts them:
    /// source bytes and float copy; a binarized or quantized tensor's packed form and expansion);
    /// else each in segments within it.
    struct OutputPlan {
        let onnx: String
        let mbm: String
        let file: MBMFile.Lazy
        let floatModel: IRModel
        let budget: Int
        let threads: Int
        let floatBytes: Int
        let storedBytes: Int
        var whole: Bool { max(floatBytes, storedBytes) <= budget }

        init(onnx: String, mbm: String, file: MBMFile.Lazy, budget: Int, threads: Int) throws {
            self.onnx = onnx
            self.mbm = mbm
            self.file = file
            self.budget = budget
            self.threads = threads
            floatModel = try ModelLoading.loadONNXAsIR(path: onnx)
            floatBytes = floatModel.graph.constants.reduce(0) { $0 + ModelRunner.runBytes($1) }
            storedBytes = file.model.graph.constants.reduce(0) { $0 + Self.storedNeed(file, $1) }
            if !whole {
                for (runner, graph, which) in [(floatRunner, floatModel.graph, "float"), (storedRunner, file.model.graph, "stored")] {
                    if let worst = runner.largestNode(of: graph), worst.bytes > budget {
                        throw ConversionError("\(mbm): node '\(worst.node)' of the \(which) model needs \(MemoryBudget.describe(worst.bytes)) for its weights to run on the inputs, more than the memory budget of \(MemoryBudget.describe(budget)); pass --max-memory \(MemoryBudget.describe(worst.bytes)) or more")
                    }
                }
            }
        }

        /// A stored constant's weight bytes in a run: a stand-in counts as the tensor it stands for.
        static func storedNeed(_ file: MBMFile.Lazy, _ t: IRTensor) -> Int {
            if let i = file.entryIndex(named: t.name), file.entries[i].isDeferred { return 10 * t.elementCount }
            return ModelRunner.runBytes(t)
        }

        /// A node too large is named with the `.mbm` verified and the inputs it runs on.
        var refusal: ModelRunner.Refusal { .init(model: mbm, inputs: "the inputs verify compares outputs on", smallerBatchOption: nil) }

        var floatRunner: ModelRunner {
            var runner = ModelRunner(mode: .segments(budget: budget, need: { ModelRunner.runBytes($0) }, constant: { $0 }),
                                     opsets: floatModel.opsets, threads: threads)
            runner.refusal = refusal
            return runner
        }

        var storedRunner: ModelRunner {
            let file = self.file
            var runner = ModelRunner(mode: .segments(budget: budget, need: { Self.storedNeed(file, $0) }, constant: { try file.resolve($0) }),
                                     opsets: file.model.opsets, threads: threads)
            runner.refusal = refusal
            return runner
        }

        /// Inputs, the float model's outputs, the stored model's, the output names, and the
        /// segments each model ran in (nil when whole).
        func run(options: Options) throws -> ([String: MBTensor], String, [String: MBTensor], [String: MBTensor], [String], [Int]?) {
            let outputNames = floatModel.graph.outputs.map(\.name)
            if whole {
                let (feeds, described, a) = try { () throws -> ([String: MBTensor], String, [String: MBTensor]) in
                    let float = try MBModel(ir: floatModel)
                    let (feeds, described) = try makeInputs(for: float, options: options)
                    return (feeds, described, try float.makeSession(.init(threads: options.threads)).run(feeds))
                }()
                let b = try MBModel(ir: file.decodeAll().model).makeSession(.init(threads: options.threads)).run(feeds)
                return (feeds, described, a, b, outputNames, nil)
            }
            // The inputs are read against the model's declared inputs alone (no weights loaded).
            var declared = IRGraph(name: floatModel.graph.name)
            declared.inputs = floatModel.graph.inputs
            let (feeds, described) = try makeInputs(for: MBModel(ir: IRModel(graph: declared, opsets: floatModel.opsets)), options: options)
            var float = floatRunner
            let a = try float.run(floatModel.graph, feeds: feeds)
            var stored = storedRunner
            let b = try stored.run(file.model.graph, feeds: feeds)
            return (feeds, described, a, b, outputNames, [float.segmentsRun, stored.segmentsRun])
        }
    }

    /// Rows whose float top-2 probabilities are closer than this are left out of the margin-aware agreement.
    public static let marginThreshold = 0.02

    /// The row as probabilities: itself when it already is a distribution, else its softmax.
    static func probabilities(_ row: ArraySlice<Float>) -> [Double] {
        let v = row.map(Double.init)
        let sum = v.reduce(0, +)
        if v.allSatisfy({ $0 >= 0 && $0 <= 1 }), abs(sum - 1) < 1e-3 { return v }
        let m = v.max() ?? 0
        let e = v.map { exp($0 - m) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    public static func compare(_ name: String, _ x: MBTensor, _ y: MBTensor) -> OutputCheck {
        let a = x.floats, b = y.floats
        var maxAbs = 0.0, dot = 0.0, na = 0.0, nb = 0.0, noise = 0.0
        for (p, q) in zip(a, b) {
            let d = Double(p) - Double(q)
            maxAbs = max(maxAbs, abs(d))
            dot += Double(p) * Double(q)
            na += Double(p) * Double(p)
            nb += Double(q) * Double(q)
            noise += d * d
        }
        let cosine = na == 0 || nb == 0 ? (na == nb ? 1 : 0) : dot / (na.squareRoot() * nb.squareRoot())
        let sqnr = noise == 0 ? Double.infinity : 10 * log10(na / noise)
        var check = OutputCheck(name: name, shape: x.shape, maxAbsError: maxAbs, cosine: cosine, sqnrDB: sqnr)
        if x.shape.count == 2, x.shape[1] > 1, x.shape == y.shape {
            let rows = x.shape[0], cols = x.shape[1]
            var agree = 0, confident = 0, confidentAgree = 0
            for r in 0..<rows {
                let ra = a[(r * cols)..<((r + 1) * cols)], rb = b[(r * cols)..<((r + 1) * cols)]
                let same = ra.indices.max(by: { ra[$0] < ra[$1] }) == rb.indices.max(by: { rb[$0] < rb[$1] })
                if same { agree += 1 }
                let p = probabilities(ra).sorted(by: >)
                if p.count < 2 || p[0] - p[1] >= marginThreshold {
                    confident += 1
                    if same { confidentAgree += 1 }
                }
            }
            check.top1Agreement = rows == 0 ? nil : Double(agree) / Double(rows)
            check.rows = rows
            check.marginAgreement = confident == 0 ? nil : Double(confidentAgree) / Double(confident)
            check.marginRows = confident
        }
        return check
    }

    /// Inputs from --input pairs, a folder, or seeded random values.
    static func makeInputs(for model: MBModel, options: Options) throws -> ([String: MBTensor], String) {
        if !options.inputs.isEmpty {
            return (try ModelInputs.read(options.inputs, model: model), "given: " + options.inputs.joined(separator: ", "))
        }
        if let path = options.inputsDirectory {
            return (try Calibration.loadInputs(path, model: model), "from \(path)")
        }
        let batch = options.random ?? 1
        var sizes: [String: [Int]] = [:]
        for spec in options.shapes {
            guard let eq = spec.firstIndex(of: "=") else { throw ConversionError("--shape \(spec): expected NAME=d0,d1,...") }
            let dims = spec[spec.index(after: eq)...].split(separator: ",").map { Int($0) }
            guard dims.allSatisfy({ ($0 ?? 0) > 0 }) else { throw ConversionError("--shape \(spec): dimensions must be positive integers") }
            sizes[String(spec[..<eq])] = dims.map { $0! }
        }
        var rng = SeededGenerator(seed: options.seed)
        var feeds: [String: MBTensor] = [:]
        for input in model.inputs {
            let shape: [Int]
            if let given = sizes[input.name] {
                shape = given
            } else {
                guard let dims = input.shape else {
                    throw ConversionError("input '\(input.name)' has unknown rank; give --shape \(input.name)=d0,d1,... or --inputs")
                }
                shape = try dims.enumerated().map { i, d in
                    switch d {
                    case .fixed(let v) where v > 0: return Int(v)
                    default:
                        if i == 0 { return batch }
                        throw ConversionError("input '\(input.name)' dimension \(i) is \(d); give --shape \(input.name)=d0,d1,... or --inputs")
                    }
                }
            }
            let n = shape.reduce(1, *)
            switch input.elementType ?? .float {
            case .float: feeds[input.name] = MBTensor(shape: shape, floats: (0..<n).map { _ in Float(rng.nextNormal()) })
            case .int64: feeds[input.name] = MBTensor(shape: shape, int64s: [Int64](repeating: 0, count: n))
            default: throw ConversionError("input '\(input.name)': random values for \(input.elementType!.name) are not supported; give --inputs")
            }
        }
        return (feeds, "random (seed \(options.seed), batch \(batch))")
    }
}

/// The weight checks of a streamed recomputation, in plan order, and the constants of the model
/// expected (each planned one replaced by its stand-in). Filled one tensor at a time.
private final class WeightChecks: @unchecked Sendable {
    private let lock = NSLock()
    private let planIndex: [String: Int]
    private var slots: [Verify.WeightCheck?]
    private(set) var constants: [IRTensor]

    init(plans: [ConversionPlan], constants: [IRTensor]) {
        planIndex = Dictionary(plans.enumerated().map { ($0.element.tensor.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        slots = Array(repeating: nil, count: plans.count)
        self.constants = constants
    }

    /// Differences found while streaming (stand-ins that differ), in file order.
    private(set) var failures: [String] = []

    func record(_ check: Verify.WeightCheck, constant j: Int, _ standIn: IRTensor, failure: String? = nil) {
        lock.lock()
        defer { lock.unlock() }
        if let i = planIndex[check.name] { slots[i] = check }
        constants[j] = standIn
        if let failure { failures.append(failure) }
    }

    var checks: [Verify.WeightCheck] { slots.compactMap { $0 } }
}

extension IRTensor.Storage {
    var kind: String {
        switch self {
        case .dense: return "dense"
        case .strings: return "strings"
        case .binarized: return "binarized"
        case .quantized(let q): return q.scheme.rawValue
        }
    }
}

extension Verify.Report {
    public func renderText() -> String {
        var out = "checksums: \(checksums); source model: \(sourceMatches ? "matches the recorded SHA-256" : "DIFFERENT from the one converted")\n"
        let identical = weights.filter(\.identical).count
        out += "weights: \(identical) of \(weights.count) identical to the binarization recomputed from \(onnx)\n"
        let rows = weights.map { w in [w.name, w.encoding, w.identical ? "identical" : (w.detail ?? "differs"),
                                       w.normalizedError.map { String(format: "%.4f", $0) } ?? "-"] }
        out += table(header: ["tensor", "stored as", "check", "norm. error"], rows: rows, rightAligned: [3])
        if !weights.isEmpty {
            out += modelDifferences.isEmpty
                ? "model: all \(nodesChecked) nodes and \(constantsChecked) constants identical to the conversion recomputed from \(onnx)\n"
                : "model: DIFFERS from the conversion recomputed from \(onnx) (\(modelDifferences.count) differences listed below)\n"
        }
        let segments = outputSegments.map { "; in \($0[0]) and \($0[1]) segments within the memory budget" } ?? ""
        out += "\noutputs (float model vs converted, both on mbconvert's runtime; inputs \(inputs)\(segments)):\n"
        out += table(header: ["output", "shape", "max abs error", "cosine", "SQNR dB", "top-1 agreement", "margin-aware"], rows: outputs.map { o in
            [o.name, "\(o.shape)", String(format: "%.4g", o.maxAbsError), String(format: "%.6f", o.cosine), String(format: "%.2f", o.sqnrDB),
             o.top1Agreement.map { String(format: "%.4f (%d rows)", $0, o.rows ?? 0) } ?? "-",
             o.marginAgreement.map { String(format: "%.4f (%d rows)", $0, o.marginRows ?? 0) } ?? "-"]
        }, rightAligned: [2, 3, 4])
        if let perLayer { out += "\n" + LayerDiagnostic.renderText(perLayer) }
        out += failures.isEmpty ? "\nverify: passed\n" : "\nverify: FAILED\n" + failures.map { "  " + $0 }.joined(separator: "\n") + "\n"
        return out
    }
}
