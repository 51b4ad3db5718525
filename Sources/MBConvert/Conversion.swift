import Foundation
import MBBinarize
import MBCore
import MBFormat
import MBImage
import MBONNX
import MBPolicy
import MBRuntime

/// `mbconvert model.onnx policy.txt`: import, find the weights (folding constant subgraphs),
/// resolve the policy, binarize (tensors in parallel), write the `.mbm` atomically.
public enum Conversion {
    public struct Options: Sendable {
        /// Replace an existing output file.
        public var force = false
        /// A policy rule that matches no tensor is an error.
        public var strict = false
        /// Calibration inputs (a .npy file or a folder; see `Calibration.loadInputs`).
        public var calibrate: String?
        /// How a folder of PNG/JPEG calibration images becomes entries; nil: the policy's
        /// `images:`, else `ImagePreprocessing()`'s defaults. Given here and in the policy: an error.
        public var images: ImagePreprocessing?
        /// Worker threads for binarization (default: every core).
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        /// Working memory the tensors in flight may use (`MemoryBudget`; nil: half of physical
        /// memory). Conversions without calibration inputs stream tensor by tensor within it.
        public var maxMemory: Int?
        /// Calibration entries per run (`--calibrate-batch`): nil runs them all as one batch;
        /// fewer than there are streams them (`Calibration.calibrateStreamed`, same corrections).
        public var calibrationBatch: Int?
        /// Called as a streamed calibration advances.
        public var calibrationProgress: (@Sendable (Calibration.Progress) -> Void)?
        /// Runs a calibration in segments even when its models fit the budget whole (tests
        /// compare the two).
        var segmentedCalibration = false
        public init(force: Bool = false, strict: Bool = false) {
            self.force = force
            self.strict = strict
        }
    }

    /// Progress events for a progress bar: a tensor finished (`done` of `total`, its stored
    /// bytes), and the source bytes of the planned tensors done so far of their total.
    public struct Progress: Sendable {
        public var done: Int
        public var total: Int
        public var tensor: String
        public var bytes: Int
        public var sourceBytesDone = 0
        public var sourceBytesTotal = 0
    }

    /// The default output path: the model's path with `.mbm` instead of `.onnx`.
    public static func defaultOutput(for model: String) -> String {
        let url = URL(fileURLWithPath: model)
        return url.pathExtension.lowercased() == "onnx"
            ? url.deletingPathExtension().appendingPathExtension("mbm").path
            : model + ".mbm"
    }

    public static func run(
        model modelPath: String, policy policyPath: String, output outputPath: String,
        options: Options = Options(), progress: (@Sendable (Progress) -> Void)? = nil
    ) throws -> ConversionReport {
        let started = Date()
        try checkOutput(outputPath, model: modelPath, policy: policyPath, force: options.force)
        let policyBytes: [UInt8]
        do { policyBytes = Array(try Data(contentsOf: URL(fileURLWithPath: policyPath))) } catch {
            throw ConversionError("\(policyPath): " + (FileManager.default.fileExists(atPath: policyPath) ? "cannot read the file" : "no such file"))
        }
        var prepared = try prepare(model: modelPath, policyBytes: policyBytes, policyFile: policyPath, strict: options.strict)
        // Calibration inputs, read once: for `allocate: sensitivity` and for `--calibrate`.
        // Streamed (`calibrationBatch` below the number of entries), only the first entries are
        // read here, for the sensitivity probes; the calibration reads the rest batch by batch.
        var calibrationInputs: [String: MBTensor]?
        var streamed: (source: CalibrationInputs, declared: [IRValueInfo], batch: Int)?
        if let calibrationPath = options.calibrate {
            // The inputs as the graph declares them (the runtime takes a graph's inputs as they
            // are): building the float model here would hold its weights.
            let declared = prepared.graph.inputs
            let images = try ImagePreprocessing.resolve(options.images, policy: prepared.policy)
            let source = try CalibrationInputs.open(calibrationPath, inputs: declared, images: images)
            if let batch = options.calibrationBatch, batch < source.count {
                let inputs = try source.batch(0..<min(source.count, Sensitivity.maxInputs))
                try Calibration.check(inputs, declared: declared, path: calibrationPath)
                calibrationInputs = inputs
                streamed = (source, declared, batch)
            } else {
                let inputs = try source.all()
                try Calibration.check(inputs, declared: declared, path: calibrationPath)
                calibrationInputs = inputs
            }
        }
        let budget = options.maxMemory ?? MemoryBudget.defaultBytes
        var allocation: [Sensitivity.Layer]?
        var allocationSeconds: Double?
        if let target = prepared.policy.target, target.allocate == .sensitivity {
            guard let inputs = calibrationInputs else {
                throw ConversionError(PolicyDiagnostic(file: policyPath, position: target.position,
                                               message: "target allocate: sensitivity measures each layer on calibration inputs; pass --calibrate PATH").description)
            }
            let start = Date()
            allocation = try Sensitivity.allocate(&prepared, target: target, inputs: inputs, threads: options.threads, budget: budget)
            allocationSeconds = Date().timeIntervalSince(start)
        }
        let fitsOutput = prepared.plans.contains { plan in
            if case .binarize(let b) = plan.decision.action { return b.fit.fitsOutput }
            return false
        }
        if calibrationInputs == nil && !fitsOutput {
            return try Conversion.streamed(prepared, model: modelPath, policy: policyPath, policyBytes: policyBytes, output: outputPath,
                                           options: options, progress: progress, started: started, allocation: allocation, allocationSeconds: allocationSeconds)
        }
        // Whether the calibration's models fit the budget whole, their values counted. When the
        // weights alone fill more than half of it, a probe on one entry measures the values.
        let valueSizes = ValueSizes()
        var wholeValues = 0
        if let inputs = calibrationInputs, !fitsOutput, ModelRunner.heldBytes(prepared) <= budget, ModelRunner.heldBytes(prepared) > budget / 2 {
            let layerNodes = calibratedNodes(prepared)
            let watched = prepared.graph.nodes.filter { layerNodes.contains($0.name) }.compactMap(\.outputs.first)
            let entries = streamed?.batch ?? (inputs.values.first?.shape.first ?? 1)
            wholeValues = try ModelRunner.wholeValueBytes(prepared, watched: watched, feeds: inputs, entries: entries, sizes: valueSizes,
                                                          threads: options.threads) ?? 0
        }
        if calibrationInputs != nil, !fitsOutput, ModelRunner.heldBytes(prepared) + wholeValues > budget || options.segmentedCalibration {
            // The models do not fit the budget whole: the float and the binarized model run in
            // segments, in one batch or batch by batch (`--calibrate-batch`). Each binarized
            // weight is converted once, the first time a segment needs it, and kept in a scratch
            // file beside the output; the corrected graph is then written tensor by tensor like
            // an uncalibrated conversion, the converted weights read back from that file.
            let start = Date()
            ModelRunner.returnFreedMemoryToTheSystem()
            let spill = try ConvertedSpill(besideOutput: outputPath)
            var (floatRunner, binarizedRunner) = ModelRunner.forConversion(prepared, budget: budget, threads: options.threads, spill: spill,
                                                                           sizes: valueSizes, values: options.segmentedCalibration ? budget : wholeValues)
            let graph = ActivationAttributes.apply(prepared.plans, to: prepared.graph)
            // Refused before any run when a node's own weights do not fit, by the larger need
            // of the two models.
            let largest: [(node: String, bytes: Int)] = [floatRunner.largestNode(of: prepared.graph), binarizedRunner.largestNode(of: graph)].compactMap { $0 }
            if let worst = largest.max(by: { $0.bytes < $1.bytes }), worst.bytes > budget {
                throw ModelRunner.tooLarge(node: worst.node, need: worst.bytes, budget: budget, refusal: .init(model: modelPath))
            }
            floatRunner.refusal.model = modelPath
            binarizedRunner.refusal.model = modelPath
            let layerNodes = calibratedNodes(prepared)
            let (corrected, found, stored): (IRGraph, [Calibration.LayerCorrection], [Calibration.StoredCorrection])
            do {
                if let streamed {
                    calibrationInputs = nil  // the first entries, read for the sensitivity probes: not needed now
                    (corrected, found, stored) = try Calibration.calibrateStreamed(
                        float: prepared.graph, binarized: graph, opsets: prepared.opsets, layerNodes: layerNodes, source: streamed.source,
                        declared: streamed.declared, batchSize: streamed.batch, threads: options.threads, runners: (floatRunner, binarizedRunner),
                        progress: options.calibrationProgress)
                } else {
                    (corrected, found, stored) = try Calibration.calibrate(float: prepared.graph, binarized: graph, layerNodes: layerNodes, inputs: calibrationInputs!,
                                                                           floatRunner: &floatRunner, binarizedRunner: &binarizedRunner)
                }
            } catch let error as ConversionError where error.description.hasPrefix("node '") {
                throw ConversionError("\(modelPath): \(error.description)", cause: error)  // a node the budget cannot hold
            }
            prepared.graph = corrected
            return try Conversion.streamed(prepared, model: modelPath, policy: policyPath, policyBytes: policyBytes, output: outputPath,
                                           options: options, progress: progress, started: started, allocation: allocation,
                                           allocationSeconds: allocationSeconds,
                                           calibration: (found, stored, Date().timeIntervalSince(start)), converted: spill)
        }
        // Calibration and output-aware fits run the float and binarized models on the inputs,
        // so every layer is binarized and held before the file is written.
        var layers = try binarize(prepared, threads: options.threads, progress: progress,
                                  skipping: fitsOutput && calibrationInputs != nil && streamed == nil ? OutputAwareConversion.fittedTensors(prepared) : [])
        var graph = prepared.graph
        for outcome in layers { graph.constants[prepared.constantIndex[outcome.name]!] = outcome.tensor }
        graph = ActivationAttributes.apply(prepared.plans, to: graph)
        var corrections: [Calibration.LayerCorrection]?
        var storedCorrections: [Calibration.StoredCorrection]?
        var calibrationSeconds: Double?
        if fitsOutput {
            // Output-aware binarization: the layers are refitted in graph order, calibrated as they go.
            guard let inputs = calibrationInputs else {
                throw ConversionError("\(policyPath): 'fit: output' fits each layer to its output on calibration inputs; pass --calibrate PATH")
            }
            if streamed != nil {
                throw ConversionError("\(policyPath): 'fit: output' holds every layer's input for all calibration entries at once and runs them as one batch; drop --calibrate-batch (or give at least the number of entries)")
            }
            let start = Date()
            let fitted: OutputAwareConversion.Outcome
            do {
                fitted = try OutputAwareConversion.run(prepared, graph: graph, outcomes: layers, inputs: inputs, threads: options.threads,
                                                       budget: options.maxMemory ?? MemoryBudget.defaultBytes)
            } catch {
                // The fit's problems name the layer; the user also needs the model they belong to.
                throw ConversionError("\(modelPath): fit: output: \(error)", cause: (error as? ConversionError)?.cause ?? error)
            }
            graph = fitted.graph
            layers = fitted.layers
            prepared.warnings += fitted.warnings
            corrections = fitted.corrections
            storedCorrections = fitted.stored
            calibrationSeconds = Date().timeIntervalSince(start)
        } else if let inputs = calibrationInputs {
            let start = Date()
            let layerNodes = calibratedNodes(prepared)
            let (corrected, found, stored) = try streamed.map {
                try Calibration.calibrateStreamed(float: prepared.graph, binarized: graph, opsets: prepared.opsets, layerNodes: layerNodes,
                                                  source: $0.source, declared: $0.declared, batchSize: $0.batch, threads: options.threads,
                                                  progress: options.calibrationProgress)
            } ?? Calibration.calibrate(float: prepared.graph, binarized: graph, opsets: prepared.opsets,
                                       layerNodes: layerNodes, inputs: inputs, threads: options.threads)
            graph = corrected
            corrections = found
            storedCorrections = stored
            calibrationSeconds = Date().timeIntervalSince(start)
        }

        let irModel = IRModel(graph: graph, opsets: prepared.opsets)
        var report = ConversionReport(model: modelPath, policy: policyPath, output: outputPath, onnxBytes: prepared.sourceBytes,
                                      layers: layers.map(\.row), warnings: prepared.warnings)
        report.calibration = corrections
        report.calibrationSeconds = calibrationSeconds
        report.allocation = allocation
        report.allocationSeconds = allocationSeconds
        let (metadata, recordBytes) = metadataEntries(report, prepared: prepared, model: modelPath, policy: policyPath, policyBytes: policyBytes,
                                                      storedCorrections: storedCorrections)
        let summary: MBMWriter.Summary
        do {
            summary = try MBMWriter().write(model: irModel, metadata: metadata, to: outputPath)
        } catch {
            throw ConversionError(error)
        }
        report.finish(summary: summary, seconds: Date().timeIntervalSince(started))
        report.totals?.calibrationRecordBytes = recordBytes
        return report
    }

    /// The layers (node names) whose outputs `--calibrate` corrects.
    static func calibratedNodes(_ prepared: Prepared) -> Set<String> {
        Set(prepared.plans.flatMap { plan -> [String] in
            guard plan.decision.action.calibrates else { return [] }
            return plan.tensor.consumers.filter { WeightedOp(rawValue: $0.opType) != nil }.map(\.name)
        })
    }

    /// The conversion without calibration inputs: tensors converted and written one by one
    /// within the memory budget (`stream`), the graph encoded from the unconverted constants
    /// (GRPH refers to tensors by index only, so it is the same), metadata last.
    static func streamed(
        _ prepared: Prepared, model modelPath: String, policy policyPath: String, policyBytes: [UInt8], output outputPath: String,
        options: Options, progress: (@Sendable (Progress) -> Void)?, started: Date,
        allocation: [Sensitivity.Layer]?, allocationSeconds: Double?,
        calibration: (corrections: [Calibration.LayerCorrection], stored: [Calibration.StoredCorrection], seconds: Double)? = nil,
        converted: ConvertedSpill? = nil
    ) throws -> ConversionReport {
        let graph = ActivationAttributes.apply(prepared.plans, to: prepared.graph)
        let (graphBytes, tensors) = MBMWriter.encodeGraph(IRModel(graph: graph, opsets: prepared.opsets))
        let writer: MBMWriter.Stream
        do { writer = try MBMWriter.Stream(path: outputPath) } catch { throw ConversionError(error) }
        let planOf = Dictionary(prepared.plans.map { ($0.tensor.name, $0) }, uniquingKeysWith: { a, _ in a })
        let topLevel = prepared.graph.constants.count
        let largest = tensors.indices.lazy.map { j in
            if j < topLevel, let held = converted?.heldBytes(tensors[j].name) { return held }
            return MemoryBudget.workingBytes(j < topLevel ? planOf[tensors[j].name] : nil, tensors[j])
        }.max() ?? 0
        let budget = options.maxMemory ?? MemoryBudget.defaultWorkingBytes(largestNeed: largest)
        let rows = try stream(prepared, tensors: tensors, into: writer, budget: budget, threads: options.threads, progress: progress,
                              converted: converted)
        var report = ConversionReport(model: modelPath, policy: policyPath, output: outputPath, onnxBytes: prepared.sourceBytes,
                                      layers: rows, warnings: prepared.warnings)
        report.allocation = allocation
        report.allocationSeconds = allocationSeconds
        report.calibration = calibration?.corrections
        report.calibrationSeconds = calibration?.seconds
        let (metadata, recordBytes) = metadataEntries(report, prepared: prepared, model: modelPath, policy: policyPath, policyBytes: policyBytes,
                                                      storedCorrections: calibration?.stored)
        let summary: MBMWriter.Summary
        do {
            summary = try writer.finish(graph: graphBytes, metadata: metadata)
        } catch {
            throw ConversionError(error)
        }
        report.finish(summary: summary, seconds: Date().timeIntervalSince(started))
        report.totals?.calibrationRecordBytes = recordBytes
        return report
    }

    /// The META entries of a converted model.
    static func metadataEntries(
        _ report: ConversionReport, prepared: Prepared, model modelPath: String, policy policyPath: String, policyBytes: [UInt8],
        storedCorrections: [Calibration.StoredCorrection]?
    ) -> (entries: [MetadataEntry], recordBytes: Int?) {
        var metadata: [MetadataEntry] = [
            MetadataEntry(MetadataKey.producer, .string("mbconvert")),
            MetadataEntry(MetadataKey.producerVersion, .string(MBConvertInfo.version)),
            MetadataEntry(MetadataKey.sourceFile, .string(URL(fileURLWithPath: modelPath).lastPathComponent)),
            MetadataEntry(MetadataKey.sourceSHA256, .bytes(prepared.sourceSHA256)),
            MetadataEntry(MetadataKey.sourceBytes, .int(Int64(prepared.sourceBytes))),
            MetadataEntry(MetadataKey.policyFile, .string(URL(fileURLWithPath: policyPath).lastPathComponent)),
            MetadataEntry(MetadataKey.policyText, .string(String(decoding: policyBytes, as: UTF8.self))),
            MetadataEntry(MetadataKey.layerStatistics, .json(report.layersJSON())),
        ]
        // Only calibrated conversions carry it, so every other output is unchanged byte for byte.
        var recordBytes: Int?
        if let storedCorrections {
            // Binary float32 arrays (files before stored a JSON list under `calibration`).
            let record = CalibrationRecord.encode(storedCorrections)
            recordBytes = record.count
            metadata.append(MetadataEntry(CalibrationRecord.key, .bytes(record)))
        }
        return (metadata, recordBytes)
    }

    /// Everything decided before binarizing: the folded graph and each tensor's plan.
    struct Prepared {
        var graph: IRGraph
        var opsets: [IROpset]
        var plans: [ConversionPlan]
        var policy: Policy
        var constantIndex: [String: Int]
        var warnings: [String]
        /// The model's weights as discovered (for the target spread's subsamples).
        var discovery: WeightDiscovery
        var sourceHash: BackgroundHash
        var sourceSHA256: [UInt8] { sourceHash.digest }
        var sourceBytes: Int
    }

    /// Imports the model, parses the policy (`policyBytes`, named `policyFile` in messages),
    /// discovers and folds the weights and resolves every decision.
    static func prepare(model modelPath: String, policyBytes: [UInt8], policyFile: String, strict: Bool) throws -> Prepared {
        let mapping: ByteStorage
        do { mapping = try FileMapping.map(path: modelPath) } catch {
            throw ConversionError(FileManager.default.fileExists(atPath: modelPath) ? "\(error)" : "\(modelPath): no such file", cause: error)
        }
        // The fingerprint is computed on another core while the model is imported and binarized.
        let sha = BackgroundHash(mapping)
        let model = try ONNXReader().load(path: modelPath)

        let parsed = Policy.parse(bytes: policyBytes, file: policyFile)
        guard let policy = parsed.policy, !parsed.diagnostics.contains(where: { $0.severity == .error }) else {
            throw ConversionError(lines: parsed.diagnostics.filter { $0.severity == .error }.map(\.description))
        }

        // Weights and decisions (the same resolution `policy check` shows).
        let discovery = try WeightDiscovery(onnx: model, file: modelPath)
        let subjects = discovery.subjects
        let unused = policy.unusedRuleDiagnostics(policy.resolve(subjects), subjects: subjects,
                                                  modelName: URL(fileURLWithPath: modelPath).lastPathComponent, strict: strict)
        if unused.contains(where: { $0.severity == .error }) { throw ConversionError(lines: unused.filter { $0.severity == .error }.map(\.description)) }
        let plans: [ConversionPlan]
        do {
            plans = try PolicyCheck.plans(policy, against: discovery)
        } catch let problem as TargetSpread.Infeasible {
            throw ConversionError(PolicyDiagnostic(file: policyFile, position: problem.position, message: problem.message).description)
        }

        // Fold constant subgraphs so every weight is a constant, and drop what nothing reads. A
        // quantized weight (DequantizeLinear of integer constants) no rule names stays as it is.
        let keeping = quantizedWeightsKept(discovery, plans)
        let graph = prune(try ConstantFolding.fold(discovery.graph, keeping: keeping))
        // Discovery and target spreads read the weights; give their pages back (the mapping
        // stays, tensors are read again one at a time).
        for c in graph.constants { if case .dense(let bytes) = c.storage { bytes.releaseResidentPages() } }
        let constantIndex = Dictionary(graph.constants.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        return Prepared(graph: graph, opsets: model.irOpsets, plans: plans.filter { constantIndex[$0.tensor.name] != nil }, policy: policy,
                        constantIndex: constantIndex, warnings: unused.map(\.description), discovery: discovery, sourceHash: sha, sourceBytes: mapping.count)
    }

    /// Binarizes (or converts to the kept type) every planned tensor, in parallel; results in
    /// plan order. The tensors in `skipping` (those `fit: output` binarizes from its own target)
    /// stay as they are, float, with a bare report row.
    static func binarize(_ prepared: Prepared, threads: Int, progress: (@Sendable (Progress) -> Void)?,
                         skipping: Set<String> = []) throws -> [LayerOutcome] {
        let jobs = prepared.plans
        let results = ResultSlots<LayerOutcome>(count: jobs.count)
        let counter = ProgressCounter()
        let workers = max(1, min(threads, jobs.count))
        let constants = prepared.graph.constants
        let index = prepared.constantIndex
        let policy = prepared.policy
        let sourceTotal = jobs.reduce(0) { $0 + constants[index[$1.tensor.name]!].sourceByteCount }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var j = worker
            while j < jobs.count {
                let job = jobs[j]
                let constant = constants[index[job.tensor.name]!]
                let outcome = skipping.contains(job.tensor.name)
                    ? .success(LayerOutcome(name: job.tensor.name, tensor: constant, row: ConversionReport.Layer(name: job.tensor.name, op: "", node: "", shape: constant.shape, rule: ""),
                                            sourceBytes: constant.sourceByteCount))
                    : Result { try convert(job, constant: constant, policy: policy) }
                results.set(j, outcome)
                if let progress {
                    let bytes = (try? outcome.get().storedBytes) ?? 0
                    let (done, sourceDone) = counter.increment(sourceBytes: (try? outcome.get().sourceBytes) ?? 0)
                    progress(Progress(done: done, total: jobs.count, tensor: job.tensor.name, bytes: bytes,
                                      sourceBytesDone: sourceDone, sourceBytesTotal: sourceTotal))
                }
                j += workers
            }
        }
        return try (0..<jobs.count).map { try results.get($0) }
    }

    /// Refuses to overwrite the input model or policy, and an existing output without `force`.
    static func checkOutput(_ output: String, model: String, policy: String, force: Bool) throws {
        let out = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
        for input in [model, policy] where URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath().path == out {
            throw ConversionError("\(output): refusing to overwrite the input file \(input)")
        }
        if FileManager.default.fileExists(atPath: output), !force {
            throw ConversionError("\(output): already exists; pass --force to replace it")
        }
    }

    /// The DequantizeLinear outputs no rule of the policy names: their node and integer weight
    /// stay in the output graph unchanged (a rule that binarizes or keeps them as float folds them).
    static func quantizedWeightsKept(_ discovery: WeightDiscovery, _ plans: [ConversionPlan]) -> Set<String> {
        let named = Set(plans.filter { $0.decision.source != .implicitDefault }.map(\.tensor.name))
        return Set(discovery.folds.filter { $0.value.node.opType == "DequantizeLinear" && !named.contains($0.key) }.keys)
    }

    /// Removes constants nothing reads (shape tensors of folded ConstantOfShape nodes, say).
    static func prune(_ graph: IRGraph) -> IRGraph {
        var used = Set(graph.outputs.map(\.name))
        func collect(_ g: IRGraph) {
            for n in g.nodes {
                used.formUnion(n.inputs)
                for a in n.attributes {
                    if case .graph(let sub) = a.value { collect(sub); used.formUnion(sub.outputs.map(\.name)) }
                    if case .graphs(let subs) = a.value { subs.forEach(collect) }
                }
            }
        }
        collect(graph)
        var out = graph
        out.constants = graph.constants.filter { used.contains($0.name) }
        return out
    }

    /// One tensor: binarize it or convert it to its kept type.
    /// `mask`: a structured mask chosen elsewhere (`method: saliency`, by the output fit) to use
    /// instead of the rule's method. `threads`: for the refit of one large tensor (the fit
    /// binarizes one layer at a time); the result is the same for every thread count.
    static func convert(_ plan: ConversionPlan, constant: IRTensor, policy: Policy, mask: [UInt8]? = nil, threads: Int = 1) throws -> LayerOutcome {
        let name = plan.tensor.name
        var row = ConversionReport.Layer(name: name, op: plan.tensor.consumers.first?.opType ?? "",
                                         node: plan.tensor.consumers.first?.name ?? "", shape: constant.shape,
                                         rule: policy.describe(plan.decision.source))
        row.sourceElementType = constant.elementType.name
        if case .keep(let type) = plan.decision.action, passesThrough(constant, keep: type) {
            // float32 kept float32: the stored bytes are the source bytes (no float copy).
            let tensor = IRTensor(name: name, elementType: .float, shape: constant.shape, storage: constant.storage)
            return LayerOutcome(name: name, tensor: tensor, row: keptRow(row, type, elements: constant.elementCount), sourceBytes: constant.sourceByteCount)
        }
        // The float copy is what is worked on from here: the source's pages go as they are read.
        let values = try floatValues(of: constant, releasingSource: true)
        switch plan.decision.action {
        case .keep(let type):
            guard let tensor = IRTensor(name: name, shape: constant.shape, floats: values, as: type) else {
                throw ConversionError("tensor '\(name)': keep \(type.name) is not a type weights can be stored in")
            }
            return LayerOutcome(name: name, tensor: tensor, row: keptRow(row, type, elements: values.count), sourceBytes: constant.sourceByteCount)
        case .quantize(let q):
            let input = try FloatTensor(name: name, shape: constant.shape, values: values)
            let (axis, perGroup, _) = plan.quantizationGroups(q.spec)
            let half = q.scaleType == .float16
            let quantized: QuantizedTensor
            switch q.spec.scheme {
            case .linear: quantized = try LinearQuantizer.quantize(input, axis: axis, bits: q.spec.bits, mse: q.spec.clip == .mse, half: half)
            case .palette: quantized = try PaletteQuantizer.quantize(input, axis: axis, channelsPerGroup: perGroup, bits: q.spec.bits, half: half)
            }
            let stats = Statistics.errors(original: values, reconstructed: quantized.dequantized())
            row.encoding = q.spec.scheme.rawValue
            row.method = q.spec.description
            if let axis { row.channelAxis = axis }
            row.scale = (axis == nil ? "tensor" : perGroup == 1 ? "channel" : "\(perGroup) channels") + (quantized.halfValues ? " float16" : "")
            row.averageBits = Double(q.spec.bits)
            row.normalizedError = stats.normalizedError
            row.sqnrDB = stats.sqnrDB
            row.maxAbsError = stats.maxAbsError
            return LayerOutcome(name: name, tensor: IRTensor(name: name, elementType: .float, shape: constant.shape, storage: .quantized(quantized)), row: row,
                                sourceBytes: constant.sourceByteCount)
        case .binarize(let b):
            guard let mix = plan.mix else { throw ConversionError("tensor '\(name)': no bit mix was resolved") }
            let scale = ScaleMode(b.scale, channelAxis: plan.tensor.outputAxis ?? 0)
            let input = try FloatTensor(name: name, shape: constant.shape, values: values)
            let config = BinarizationConfig(distribution: mix, method: b.method, scale: scale)
            var packed: PackedTensor
            var exact = false
            if let mask {
                packed = try refit(Binarizer.binarize(input, mask: mask, scale: scale), input, b.refit, threads: threads)
            } else if mayBeExact(input, maxBits: mix.used.last?.bits ?? 1, channelAxis: plan.tensor.outputAxis),
               let found = ExactMode.detect(input, channelAxis: plan.tensor.outputAxis).packed {
                // Already binarized (e.g. trained with HBB and exported after the last
                // binarization): store its own levels, signs and mask, with zero error.
                packed = found
                exact = true
            } else if let groups = try maskGroups(plan, shape: constant.shape, granularity: b.granularity) {
                // Structured masks (granularity group:N or channel) along the reduction axis.
                packed = try refit(Binarizer.binarize(input, config, groups: groups, wholeTensor: b.granularity == .channel), input, b.refit, threads: threads)
            } else {
                packed = try refit(Binarizer.binarize(input, config), input, b.refit, threads: threads)
            }
            packed = storedScales(packed, b, exact: exact)
            let stats = Statistics(original: values, packed: packed)
            let tensor = IRTensor(name: name, elementType: .float, shape: constant.shape, storage: .binarized(packed))
            row.encoding = "binarized"
            row.method = exact ? "exact" : (mask != nil ? "saliency" : b.method.rawValue) + refitSuffix(b.refit) + (b.granularity == .element ? "" : " \(b.granularity)")
            row.scale = (packed.scale == .tensor ? "tensor" : "channel") + (packed.halfScales ? " float16" : "")
            if case .channel(let axis) = packed.scale { row.channelAxis = axis }
            row.requestedMix = mix.entries.filter { $0.fraction > 0 }.map { ConversionReport.MixEntry(bits: $0.bits, fraction: $0.fraction) }
            row.realizedMix = stats.fractions.enumerated().filter { $0.element > 0 }.map { ConversionReport.MixEntry(bits: $0.offset + 1, fraction: $0.element) }
            row.averageBits = stats.averageBits
            row.normalizedError = stats.normalizedError
            row.sqnrDB = stats.sqnrDB
            row.maxAbsError = stats.maxAbsError
            return LayerOutcome(name: name, tensor: tensor, row: row, sourceBytes: constant.sourceByteCount)
        }
    }

    /// The report row of a tensor kept as `type`.
    static func keptRow(_ row: ConversionReport.Layer, _ type: ElementType, elements: Int) -> ConversionReport.Layer {
        var row = row
        let bits = type.traits.bitsPerElement
        row.encoding = "keep \(Policy.keepName(type))"
        row.storedBytes = bits / 8 * elements
        row.bitsPerWeight = Double(bits)
        row.averageBits = Double(bits)
        return row
    }

    /// The named `refit:` extras on top of HBB.md's scales (`.off` leaves them as they are).
    static func refit(_ packed: PackedTensor, _ original: FloatTensor, _ mode: RefitMode, threads: Int = 1) throws -> PackedTensor {
        switch mode {
        case .off: return packed
        case .leastSquares: return try Refit.refit(packed, original: original).packed
        case .alternating: return try AlternatingRefit.refit(packed, original: original, threads: threads).packed
        }
    }

    /// `scale_type: float16`: every level scale rounded to float16 and stored as such. Kept in
    /// float32 when a scale does not fit float16, and for exact mode unless rounding changes nothing.
    static func storedScales(_ packed: PackedTensor, _ b: WeightDecision.Binarization, exact: Bool = false) -> PackedTensor {
        guard b.scaleType == .float16, let half = packed.withHalfScales() else { return packed }
        if exact, half.levels.map(\.scales) != packed.levels.map(\.scales) { return packed }
        return half
    }

    static func refitSuffix(_ mode: RefitMode) -> String {
        switch mode {
        case .off: ""
        case .leastSquares: "+refit"
        case .alternating: "+alternating-refit"
        }
    }

    /// Mask groups of a structured granularity along the weight's reduction axis (HBB with
    /// `granularity: group:N | channel`); nil for per-entry masks.
    static func maskGroups(_ plan: ConversionPlan, shape: [Int], granularity: MaskGranularity) throws -> MaskGroups? {
        guard granularity != .element else { return nil }
        let name = plan.tensor.name
        let op = plan.tensor.consumers.first?.opType ?? ""
        if op == "Conv", shape.count >= 3 {
            let taps = shape[2...].reduce(1, *)
            return MaskGroups.weight(rows: shape[0], taps: taps, channels: shape[1], rowStride: shape[1] * taps, tapStride: 1,
                                     channelStride: taps, granularity: granularity)
        }
        if op == "Gemm" || op == "MatMul", shape.count == 2, let axis = plan.tensor.outputAxis {
            let rows = shape[axis], k = shape[1 - axis]
            return MaskGroups.weight(rows: rows, taps: 1, channels: k, rowStride: axis == 0 ? k : 1, tapStride: 0,
                                     channelStride: axis == 0 ? 1 : rows, granularity: granularity)
        }
        throw ConversionError("tensor '\(name)': granularity \(granularity) needs a Conv weight or a 2-D Gemm/MatMul weight (got \(op.isEmpty ? "no consumer" : op) \(shape))")
    }

    /// Exact mode is tried only for tensors that could already be binarized with at most the
    /// policy's widest bitwidth K: at most 2^(K+1) - 2 distinct values per tensor or per output
    /// channel, and some value repeated in each. A cheap scan that rejects ordinary float weights
    /// at once, small channels too (a depthwise 3x3 channel has 9 values, fewer than 14, but
    /// trained floats never repeat one, while binarized weights repeat their few values).
    static func mayBeExact(_ t: FloatTensor, maxBits: Int, channelAxis: Int?) -> Bool {
        let limit = (1 << (min(maxBits, 8) + 1)) - 2
        func fewValues(_ values: some Collection<Float>) -> Bool {
            var seen = Set<Float>()
            for v in values {
                seen.insert(v == 0 ? 0 : v)
                if seen.count > limit { return false }
            }
            return seen.count < values.count
        }
        if fewValues(t.values) { return true }
        guard let axis = channelAxis, axis < t.shape.count, let layout = try? GroupLayout(shape: t.shape, scale: .channel(axis: axis)) else {
            return false
        }
        // Each channel read in place (a group-major copy would be as large as the tensor).
        for g in 0..<layout.groupCount {
            let start = g * layout.groupSize
            if !fewValues((0..<layout.groupSize).lazy.map { t.values[layout.flatIndex(ofGroupMajor: start + $0)] }) { return false }
        }
        return true
    }

    /// A constant's elements as Float (float32, float16, bfloat16, double sources). With
    /// `releasingSource`, a mapped source is read in pieces of `sourcePieceBytes` whose pages are
    /// released once converted, so the source and its float copy are never both resident.
    static func floatValues(of t: IRTensor, releasingSource: Bool = false) throws -> [Float] {
        let failure = ConversionError("tensor '\(t.name)': \(t.elementType.name) values cannot be binarized (float32, float16, bfloat16 or double only)")
        guard releasingSource, case .dense(let bytes) = t.storage, bytes.storage.isFileMapping,
              t.shape.count > 0, t.elementType.traits.bitsPerElement % 8 == 0, t.elementType.traits.bitsPerElement > 0 else {
            guard let values = t.floatValues() else { throw failure }
            return values
        }
        let size = t.elementType.traits.bitsPerElement / 8
        let n = t.elementCount
        guard bytes.count >= n * size else { throw failure }
        var values: [Float] = []
        values.reserveCapacity(n)
        let perPiece = max(1, sourcePieceBytes / size)
        for start in stride(from: 0, to: n, by: perPiece) {
            let count = min(perPiece, n - start)
            let piece = ByteSlice(storage: bytes.storage, offset: bytes.offset + start * size, count: count * size)
            guard let part = IRTensor(name: t.name, elementType: t.elementType, shape: [count], storage: .dense(piece)).floatValues() else { throw failure }
            values.append(contentsOf: part)
            piece.releaseResidentPages()
        }
        return values
    }

    /// Piece size for reading a mapped source (`floatValues(of:releasingSource:)`).
    static let sourcePieceBytes = 4 << 20

    struct LayerOutcome: Sendable {
        var name: String
        var tensor: IRTensor
        var row: ConversionReport.Layer
        /// Bytes of the source tensor (for progress).
        var sourceBytes = 0
        var storedBytes: Int { row.storedBytes }
    }
}

public enum MBConvertInfo {
    public static let version = "0.1.0-dev"
}

/// SHA-256 of a mapped file, computed on a background queue; `digest` waits for it.
final class BackgroundHash: @unchecked Sendable {
    private let group = DispatchGroup()
    private var result: [UInt8] = []

    init(_ storage: ByteStorage) {
        group.enter()
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = Self.sha256(of: storage, piece: 8 << 20)
            self.group.leave()
        }
    }

    /// SHA-256 of `storage` read in pieces whose pages are released once hashed: a big mapped
    /// model is not held resident just to be fingerprinted.
    static func sha256(of storage: ByteStorage, piece: Int) -> [UInt8] {
        var sha = SHA256()
        for start in stride(from: 0, to: storage.count, by: piece) {
            let slice = ByteSlice(storage: storage, offset: start, count: min(piece, storage.count - start))
            slice.withBytes { sha.update($0) }
            slice.releaseResidentPages()
        }
        return sha.finalize()
    }

    var digest: [UInt8] {
        group.wait()
        return result
    }
}

/// Results written by concurrent workers, one slot each.
final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, Error>) { lock.lock(); slots[i] = r; lock.unlock() }
    func get(_ i: Int) throws -> T { lock.lock(); defer { lock.unlock() }; return try slots[i]!.get() }
}

final class ProgressCounter: @unchecked Sendable {
    private var value = 0
    private var bytes = 0
    private let lock = NSLock()
    func increment(sourceBytes: Int = 0) -> (done: Int, sourceBytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        bytes += sourceBytes
        return (value, bytes)
    }
}

extension IRTensor {
    /// Bytes of the tensor's source storage (dense bytes; 0 for other storage).
    var sourceByteCount: Int {
        if case .dense(let bytes) = storage { return bytes.count }
        return 0
    }
}
