import Foundation
import MBBinarize
import MBCore
import MBKernels
import MBPolicy
import MBRuntime

/// The graph side of output-aware binarization (`fit: output`, MBBinarize's OutputFit): the
/// binarized layers are visited in graph order; for each layer that fits its output, its input
/// rows are taken from the float model (X_f) and from the model whose upstream layers are already
/// fitted and calibrated (X_q), and the weight is refitted on their second moments. With
/// `--calibrate`, every calibrated layer's output statistics are corrected (as `Calibration`
/// does) before any later layer's inputs are measured, so each fit sees the upstream that will
/// be stored. Replaces the separate calibration step when a policy fits any output.
enum OutputAwareConversion {
    /// Per-phase process CPU and wall time of the fit, printed to stderr per layer when
    /// MBCONVERT_FIT_TIMES is set (a diagnostic for profiling, not part of the report).
    final class PhaseTimes {
        static let enabled = ProcessInfo.processInfo.environment["MBCONVERT_FIT_TIMES"].map { !$0.isEmpty && $0 != "0" } ?? false
        var cpu = 0.0, wall = Date()
        var parts: [String] = []
        init() { mark() }
        static func processCPU() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        func mark() { cpu = Self.processCPU(); wall = Date() }
        /// Records the phase that ends now.
        func lap(_ name: String) {
            guard Self.enabled else { return }
            parts.append(String(format: "%@ %.2f/%.2f", name, Self.processCPU() - cpu, Date().timeIntervalSince(wall)))
            mark()
        }
        func flush(_ what: String) {
            guard Self.enabled, !parts.isEmpty else { return }
            FileHandle.standardError.write(Data("fit times (CPU/wall s) \(what): \(parts.joined(separator: ", "))\n".utf8))
            parts = []
        }
    }

    struct Outcome {
        var graph: IRGraph
        var layers: [Conversion.LayerOutcome]
        var corrections: [Calibration.LayerCorrection]
        var stored: [Calibration.StoredCorrection]
        var warnings: [String]
    }

    /// One binarized layer node, in graph order.
    struct Layer {
        var node: IRNode
        var plan: ConversionPlan
        var outcomeIndex: Int
        var fits: Bool
        var calibrates: Bool
        /// `fit: output-gain`: rows normalized before the fit, sizes restored by the correction.
        var gains = false
    }

    /// `budget` (`--max-memory`) bounds each layer's fit: what `OutputFit.Accumulator.workingBytes`
    /// counts for it, its input rows in both models, and the float model's values held for the
    /// later layers; a layer that cannot fit within it stops the conversion with nothing written.
    static func run(_ prepared: Conversion.Prepared, graph binarized: IRGraph, outcomes: [Conversion.LayerOutcome],
                    inputs: [String: MBTensor], threads: Int, budget: Int = MemoryBudget.defaultBytes) throws -> Outcome {
        var (layers, warnings) = discover(prepared, graph: binarized)
        let outcomeIndex = Dictionary(outcomes.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        layers = layers.compactMap { layer in
            guard let index = outcomeIndex[layer.plan.tensor.name] else { return nil }
            var layer = layer
            layer.outcomeIndex = index
            return layer
        }

        // Float values every later step compares with: fitted layers' inputs, calibrated layers' outputs.
        let floatNames = Set(layers.filter(\.fits).map { $0.node.inputs[0] } + layers.filter(\.calibrates).map { $0.node.outputs[0] })
        let times = PhaseTimes()
        let floatValues = try run(prepared.graph, exposing: Array(floatNames), opsets: prepared.opsets, inputs: inputs, threads: threads, transforms: [:])
        times.lap("float run")
        times.flush("float model")

        var graph = binarized
        var results = outcomes
        var corrections: [Calibration.LayerCorrection] = []
        var stored: [Calibration.StoredCorrection] = []
        var pending: [Layer] = []
        /// The last fitted layer's input in the partly binarized model: every layer before it in
        /// graph order was done when it was computed, so it is still the model's value and the
        /// next run starts from it rather than from the model input.
        var resume: (name: String, value: MBTensor)? = nil

        /// Runs `graph` once: corrects every pending layer's output as it is computed (and folds
        /// the corrections), and returns the values asked for as the corrected model computes them.
        func advance(exposing names: [String]) throws -> [String: MBTensor] {
            let found = CorrectionBox()
            var transforms: [String: (MBTensor) -> MBTensor] = [:]
            for layer in pending {
                let output = layer.node.outputs[0], node = layer.node
                guard let reference = floatValues[output] else { continue }
                transforms[output] = { y in
                    guard y.shape == reference.shape, y.shape.count >= 2 else { return y }
                    let ax = Calibration.axis(for: node, rank: y.shape.count)
                    let f = Calibration.channelStatistics(reference, axis: ax)
                    let (scale, shift) = Calibration.correction(float: f, binarized: Calibration.channelStatistics(y, axis: ax))
                    found.set(output, scale: scale, shift: shift, floatStd: f.variance.map { $0.squareRoot() }, rank: y.shape.count, axis: ax)
                    return Calibration.apply(y, axis: ax, scale: scale, shift: shift)
                }
            }
            let wanted = names + pending.map { $0.node.outputs[0] }
            let values: [String: MBTensor]
            if let resume, let cut = resumed(graph, at: resume.name, value: resume.value, inputs: inputs) {
                values = try run(cut.graph, exposing: wanted, opsets: prepared.opsets, inputs: cut.feeds, threads: threads, transforms: transforms)
            } else {
                values = try run(graph, exposing: wanted, opsets: prepared.opsets, inputs: inputs, threads: threads, transforms: transforms)
            }
            for layer in pending {
                let output = layer.node.outputs[0]
                guard let c = found.get(output) else {
                    corrections.append(Calibration.LayerCorrection(node: layer.node.name, output: output, channels: 0,
                                                                   storedAs: "not corrected (its output is not a rank >= 2 tensor shaped like the float model's)",
                                                                   meanScaleChange: 0, meanShift: 0))
                    continue
                }
                let storedAs = Calibration.fold(c, output: output, into: &graph)
                stored.append(Calibration.StoredCorrection(output: output, c))
                corrections.append(Calibration.report(c, node: layer.node.name, output: output, storedAs: storedAs))
            }
            pending = []
            return values
        }

        for layer in layers {
            if layer.fits {
                let input = layer.node.inputs[0]
                let quantized = try advance(exposing: [input])
                times.lap("graph run")
                guard let xq = quantized[input], let xf = floatValues[input] else {
                    throw ConversionError("layer '\(layer.node.name)': its input '\(input)' was not computed on the calibration inputs")
                }
                try checkBudget(layer, prepared: prepared, input: xq, held: floatValues.values.reduce(0) { $0 + 4 * $1.count }, budget: budget)
                let (outcome, notes) = try fit(layer, prepared: prepared, current: results[layer.outcomeIndex], xf: xf, xq: xq, threads: threads, times: times)
                resume = (input, xq)
                times.flush("layer '\(layer.node.name)'")
                warnings += notes.map { "tensor '\(layer.plan.tensor.name)': \($0)" }
                results[layer.outcomeIndex] = outcome
                graph.constants[prepared.constantIndex[outcome.name]!] = outcome.tensor
            }
            if layer.calibrates { pending.append(layer) }
        }
        if !pending.isEmpty { _ = try advance(exposing: []) }
        // Every layer `Conversion.binarize` left float was fitted above; a binarized plan still
        // float here (none is expected) gets its weight-space binarization rather than staying float.
        for layer in layers where layer.fits {
            guard case .binarize = layer.plan.decision.action, case .dense = results[layer.outcomeIndex].tensor.storage else { continue }
            let constant = prepared.graph.constants[prepared.constantIndex[layer.plan.tensor.name]!]
            results[layer.outcomeIndex] = try Conversion.convert(layer.plan, constant: constant, policy: prepared.policy)
            graph.constants[prepared.constantIndex[layer.plan.tensor.name]!] = results[layer.outcomeIndex].tensor
        }
        times.lap("last calibration run")
        times.flush("end")
        return Outcome(graph: graph, layers: results, corrections: corrections, stored: stored, warnings: warnings)
    }

    /// The binarized layer nodes of `graph` in graph order (`outcomeIndex` not yet set), whether
    /// each fits its output, and why a layer that asks to is fitted to its weights instead.
    static func discover(_ prepared: Conversion.Prepared, graph: IRGraph) -> (layers: [Layer], warnings: [String]) {
        var warnings: [String] = []
        var layers: [Layer] = []
        for node in graph.nodes where WeightedOp(rawValue: node.opType) != nil && !node.outputs.isEmpty {
            // The weight input (position 1) when it is planned, else any planned input (a bias).
            let planned = prepared.plans.filter { plan in
                if case .keep = plan.decision.action { return false }
                return node.inputs.contains(plan.tensor.name)
            }
            guard let plan = planned.first(where: { node.inputs.count > 1 && $0.tensor.name == node.inputs[1] }) ?? planned.first else { continue }
            // int/palette layers are not fitted, but are calibrated in graph order like the rest.
            var fits = false, gains = false
            if case .binarize(let b) = plan.decision.action { fits = b.fit.fitsOutput; gains = b.fit == .outputGain }
            if fits, plan.tensor.consumers.count != 1 {
                warnings.append("tensor '\(plan.tensor.name)': read by \(plan.tensor.consumers.count) nodes; fit: output needs one reader, fitted to the weights instead")
                fits = false
            }
            if fits, let problem = unsupported(node, weight: plan.tensor.name) {
                warnings.append("tensor '\(plan.tensor.name)': \(problem); fitted to the weights instead")
                fits = false
            }
            if !fits, case .binarize(let b) = plan.decision.action, b.saliency, b.fit.fitsOutput {
                warnings.append("tensor '\(plan.tensor.name)': method: saliency needs the output fit; its mask is middle-out's")
            }
            if fits, gains, !plan.decision.action.calibrates {
                warnings.append("tensor '\(plan.tensor.name)': fit: output-gain needs the layer calibrated (the correction gives each channel its size back); fitted as fit: output")
                gains = false
            }
            layers.append(Layer(node: node, plan: plan, outcomeIndex: -1, fits: fits, calibrates: plan.decision.action.calibrates,
                                gains: fits && gains))
        }
        return (layers, warnings)
    }

    /// The tensors `run` will fit to their output: their weight-space binarization is not needed
    /// before the fit (it starts from its own target), so `Conversion.binarize` skips them.
    static func fittedTensors(_ prepared: Conversion.Prepared) -> Set<String> {
        Set(discover(prepared, graph: prepared.graph).layers.filter(\.fits).map(\.plan.tensor.name))
    }

    /// Refuses a layer whose fit would not stay within `budget`; see `run`.
    static func checkBudget(_ layer: Layer, prepared: Conversion.Prepared, input: MBTensor, held: Int, budget: Int) throws {
        let constant = prepared.graph.constants[prepared.constantIndex[layer.plan.tensor.name]!]
        let (geometry, rows, conv) = try geometry(layer.node, weightShape: constant.shape, input: input.shape, elements: input.count)
        var fit = OutputFit.Accumulator.workingBytes(geometry: geometry, expectedRows: rows)
        if let conv, rows >= geometry.columns {
            // The other parts' second moments and cross products, and each part's two im2col blocks.
            let d = geometry.columns
            fit += (momentParts - 1) * geometry.groups * (d * d + geometry.rows / geometry.groups * d) * 8 + momentParts * 2 * conv.outputSize * d * 4
        }
        let need = fit + 2 * 4 * input.count + held
        guard need > budget else { return }
        let d = geometry.columns
        let what = rows < d ? "its \(rows) input rows of \(d) columns" : "\(geometry.groups > 1 ? "\(geometry.groups) " : "")\(d)×\(d) second moments and their factors"
        throw ConversionError("layer '\(layer.node.name)': fit: output needs \(MemoryBudget.describe(need)) (\(MemoryBudget.describe(fit)) for \(what) and the fit's copies of \(geometry.rows * d) weights, \(MemoryBudget.describe(8 * input.count)) for its inputs in both models, \(MemoryBudget.describe(held)) of float values held for later layers), over the memory budget of \(MemoryBudget.describe(budget)); raise --max-memory, use fewer calibration inputs or fit this layer to its weights")
    }

    /// Why `node` cannot be fitted to its output, or nil.
    static func unsupported(_ node: IRNode, weight: String) -> String? {
        switch node.opType {
        case "Conv":
            guard node.inputs.count >= 2, node.inputs[1] == weight else { return "Conv reads it as its input, not its weight" }
            if case .string(let bytes)? = node.attribute("auto_pad"), case let pad = String(decoding: bytes, as: UTF8.self),
               !["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(pad) {
                return "Conv auto_pad '\(pad)'"
            }
            return nil
        case "Gemm":
            guard node.inputs.count >= 2, node.inputs[1] == weight else { return "Gemm reads it as A; fit: output needs the weight as B" }
            if case .int(let t)? = node.attribute("transA"), t != 0 { return "Gemm with transA = 1" }
            return nil
        case "MatMul":
            guard node.inputs.count == 2, node.inputs[1] == weight else { return "MatMul reads it as its left operand" }
            return nil
        default:
            return "\(node.opType) layers are not fitted to their output"
        }
    }

    /// Refits one layer's weight to its output; the outcome's tensor and report row are replaced.
    static func fit(_ layer: Layer, prepared: Conversion.Prepared, current: Conversion.LayerOutcome, xf: MBTensor, xq: MBTensor,
                    threads: Int = 1, times: PhaseTimes = PhaseTimes()) throws -> (Conversion.LayerOutcome, [String]) {
        let plan = layer.plan
        let constant = prepared.graph.constants[prepared.constantIndex[plan.tensor.name]!]
        var weights = try Conversion.floatValues(of: constant)
        let name = plan.tensor.name
        var notes: [String] = []
        /// The weight-space binarization, for a layer that falls back to it (`Conversion.binarize`
        /// leaves fitted layers float until here).
        func weightFit() throws -> Conversion.LayerOutcome {
            if case .binarize(let b) = plan.decision.action, b.saliency { notes.append("method: saliency needs the output fit; its mask is middle-out's") }
            if case .binarized = current.tensor.storage { return current }
            var outcome = try Conversion.convert(plan, constant: constant, policy: prepared.policy)
            outcome.sourceBytes = current.sourceBytes
            return outcome
        }
        guard xf.shape == xq.shape else {
            throw ConversionError("layer '\(layer.node.name)': input \(xq.shape) in the binarized model, \(xf.shape) in the float model")
        }
        var gains: [Float]? = nil
        if layer.gains {
            // Each output channel's row over its mean |w|: the fit (and the stored tensor) sees
            // channels of one size; the correction that follows multiplies the sizes back in.
            let g = try Self.geometry(layer.node, weightShape: constant.shape, input: xq.shape, elements: xq.count).0
            gains = rowGains(weights, g)
            weights = scaledRows(weights, g, by: gains!.map { 1 / $0 })
        }
        let (geometry, inputs) = try accumulate(layer.node, weights: weights, weightShape: constant.shape, xf: xf, xq: xq, threads: threads)
        times.lap("moments")
        let system: OutputFit.System
        let damping: Double
        if case .binarize(let b) = plan.decision.action { damping = b.damping } else { damping = OutputFit.dampingFraction }
        do { system = try OutputFit.system(inputs, geometry: geometry, dampingFraction: damping) } catch {
            notes.append("\(error); fitted to the weights instead")
            return (try weightFit(), notes)
        }
        notes += system.warnings
        times.lap("system")
        let target = OutputFit.target(weights: weights, inputs: inputs, system: system, geometry: geometry)
        times.lap("target")
        // The policy's own method on the target w' gives the mask and the first scales.
        var targetConstant = constant
        targetConstant.elementType = .float
        targetConstant.storage = .dense(target.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) })
        let start = try Conversion.convert(plan, constant: targetConstant, policy: prepared.policy,
                                           mask: try saliencyMask(plan, shape: constant.shape, target: target, system: system, geometry: geometry, notes: &notes),
                                           threads: threads)
        guard case .binarized(let startPacked) = start.tensor.storage else { return (try weightFit(), notes) }
        times.lap("start")
        let result: OutputFit.Result
        do { result = try OutputFit.fit(start: startPacked, target: target, system: system, geometry: geometry, threads: threads) } catch {
            notes.append("\(error); fitted to the weights instead")
            return (try weightFit(), notes)
        }
        notes += result.warnings
        times.lap("fit")
        guard case .binarize(let b) = plan.decision.action else { return (try weightFit(), notes) }
        let packed = Conversion.storedScales(result.packed, b)
        var outcome = current
        outcome.tensor = IRTensor(name: name, elementType: .float, shape: constant.shape, storage: .binarized(packed))
        let fitted = packed.dequantized()
        let stats = Statistics(original: weights, packed: packed)
        // The start's row (the policy's method and scales), its errors measured against the weights.
        var row = start.row
        row.method = (row.method ?? "") + (gains == nil ? "+output-fit" : "+output-gain-fit")
        row.averageBits = stats.averageBits
        row.realizedMix = stats.fractions.enumerated().filter { $0.element > 0 }.map { ConversionReport.MixEntry(bits: $0.offset + 1, fraction: $0.element) }
        row.normalizedError = stats.normalizedError
        row.sqnrDB = stats.sqnrDB
        row.maxAbsError = stats.maxAbsError
        // Under output-gain the start is already in the normalized rows' space, like `fitted`.
        // The start's error and the fit's are independent: one thread each.
        var errors = [0.0, 0.0]
        errors.withUnsafeMutableBufferPointer { out in
            let out = UncheckedSendable(out.baseAddress!)
            Parallel.forEach(2, threads: threads) { i in
                out.value[i] = OutputFit.relativeOutputError(fitted: i == 0 ? startPacked.dequantized() : fitted, inputs: inputs, geometry: geometry)
            }
        }
        row.outputErrorWeightFit = errors[0]
        row.outputError = errors[1]
        row.calibrationRows = inputs.sampleRows
        row.damping = system.damping.max()
        outcome.row = row
        times.lap("report")
        return (outcome, notes)
    }

    /// `method: saliency`: the structured mask of `target` (w') chosen by what fewer bits cost the
    /// layer's output (MBBinarize's SaliencyMask), or nil for the rule's own method. A mask that
    /// cannot be chosen so falls back to middle-out with a note.
    static func saliencyMask(_ plan: ConversionPlan, shape: [Int], target: [Float], system: OutputFit.System, geometry: OutputFit.Geometry,
                             notes: inout [String]) throws -> [UInt8]? {
        guard case .binarize(let b) = plan.decision.action, b.saliency, let mix = plan.mix,
              let groups = try Conversion.maskGroups(plan, shape: shape, granularity: b.granularity) else { return nil }
        do {
            let layout = try GroupLayout(shape: shape, scale: ScaleMode(b.scale, channelAxis: plan.tensor.outputAxis ?? 0))
            return try SaliencyMask.select(target: target, layout: layout, groups: groups, wholeTensor: b.granularity == .channel,
                                           bits: mix.entries.map(\.bits), fractions: mix.entries.map(\.fraction), system: system,
                                           geometry: geometry, tensor: plan.tensor.name)
        } catch {
            notes.append("\(error); its mask is middle-out's")
            return nil
        }
    }

    /// Mean |w| of each output channel's row (1 for a row of zeros).
    static func rowGains(_ w: [Float], _ g: OutputFit.Geometry) -> [Float] {
        (0..<g.rows).map { r in
            var sum = 0.0
            for c in 0..<g.columns { sum += Double(abs(w[g.flat(r, c)])) }
            let mean = Float(sum / Double(max(g.columns, 1)))
            return mean > 0 && mean.isFinite ? mean : 1
        }
    }

    /// `w` with row r (output channel r) multiplied by `factors[r]`.
    static func scaledRows(_ w: [Float], _ g: OutputFit.Geometry, by factors: [Float]) -> [Float] {
        var out = w
        for r in 0..<g.rows {
            for c in 0..<g.columns { out[g.flat(r, c)] *= factors[r] }
        }
        return out
    }

    /// The fit's view of the weight: its geometry and the rows each group sees.
    static func geometry(_ node: IRNode, weightShape: [Int], input: [Int], elements: Int) throws -> (OutputFit.Geometry, rows: Int, conv: ConvGeometry?) {
        if node.opType == "Conv" {
            let conv = try convGeometry(node, weightShape: weightShape, input: input)
            let d = conv.inPerGroup * conv.kernelSize
            return (OutputFit.Geometry(rows: conv.outChannels, columns: d, groups: conv.groups, rowStride: d, columnStride: 1),
                    conv.batch * conv.outputSize, conv)
        }
        // Gemm / MatMul: rows of the input's last axis (Gemm inputs are 2-D).
        guard weightShape.count == 2, let k = input.last, k > 0 else {
            throw ConversionError("layer '\(node.name)': \(node.opType) weight \(weightShape) and input \(input) cannot be fitted")
        }
        let transB: Bool
        if node.opType == "Gemm", case .int(let t)? = node.attribute("transB") { transB = t != 0 } else { transB = false }
        let n = transB ? weightShape[0] : weightShape[1]
        guard (transB ? weightShape[1] : weightShape[0]) == k else {
            throw ConversionError("layer '\(node.name)': input \(input) does not match weight \(weightShape)")
        }
        let geometry = transB ? OutputFit.Geometry(rows: n, columns: k, rowStride: k, columnStride: 1)
            : OutputFit.Geometry(rows: n, columns: k, rowStride: 1, columnStride: n)
        return (geometry, elements / k, nil)
    }

    /// Convolution samples are accumulated in this many parts (the first and the second half of
    /// the batch, one thread each when there are two), added together at the end: a fixed count,
    /// so the sums, and the stored result, do not depend on `--threads`.
    static let momentParts = 2

    /// What the fit keeps of the layer's input rows (OutputFit.Accumulator), fed one sample and
    /// group (Conv) or 4,096 rows (Gemm, MatMul) at a time.
    static func accumulate(_ node: IRNode, weights: [Float], weightShape: [Int], xf: MBTensor, xq: MBTensor,
                           threads: Int = 1) throws -> (OutputFit.Geometry, OutputFit.Inputs) {
        let a = xf.floats, b = xq.floats
        let (geometry, rows, conv) = try geometry(node, weightShape: weightShape, input: xq.shape, elements: b.count)
        var acc = OutputFit.Accumulator(weights: weights, geometry: geometry, expectedRows: rows)
        if let conv {
            let d = geometry.columns, positions = conv.outputSize
            // Kept rows stay in sample order (one part); second moments are summed in parts.
            let parts = acc.keepsRows ? 1 : min(momentParts, conv.batch)
            var accs = [acc] + (1..<parts).map { _ in OutputFit.Accumulator(weights: weights, geometry: geometry, expectedRows: rows) }
            a.withUnsafeBufferPointer { fp in
                b.withUnsafeBufferPointer { qp in
                    accs.withUnsafeMutableBufferPointer { accs in
                        let shared = UncheckedSendable((fp.baseAddress!, qp.baseAddress!, accs.baseAddress!))
                        Parallel.forEach(parts, threads: threads) { part in
                            let (fp, qp, accs) = shared.value
                            var rf = [Float](repeating: 0, count: positions * d), rq = rf
                            for n in (conv.batch * part / parts)..<(conv.batch * (part + 1) / parts) {
                                for g in 0..<conv.groups {
                                    ConvRows.extract(fp, geometry: conv, sample: n, group: g, into: &rf)
                                    ConvRows.extract(qp, geometry: conv, sample: n, group: g, into: &rq)
                                    accs[part].add(group: g, quantized: rq, float: rf, count: positions)
                                }
                            }
                        }
                    }
                }
            }
            acc = accs[0]
            for part in accs.dropFirst() { acc.merge(part) }
            return (geometry, acc.finish())
        }
        let k = geometry.columns, chunk = 4096
        a.withUnsafeBufferPointer { fp in
            b.withUnsafeBufferPointer { qp in
                for start in stride(from: 0, to: rows, by: chunk) {
                    acc.add(group: 0, quantized: qp.baseAddress! + start * k, float: fp.baseAddress! + start * k, count: min(chunk, rows - start))
                }
            }
        }
        return (geometry, acc.finish())
    }

    /// The convolution `node` computes on an input of shape `input` (ONNX Conv attributes).
    static func convGeometry(_ node: IRNode, weightShape w: [Int], input x: [Int]) throws -> ConvGeometry {
        func ints(_ name: String) -> [Int]? {
            if case .ints(let v)? = node.attribute(name) { return v.map { Int($0) } }
            return nil
        }
        var group = 1
        if case .int(let g)? = node.attribute("group") { group = Int(g) }
        guard x.count >= 3, w.count == x.count else {
            throw ConversionError("layer '\(node.name)': input \(x) and weight \(w) are not a convolution")
        }
        let r = x.count - 2
        let spatial = Array(x[2...]), kernel = Array(w[2...])
        let strides = ints("strides") ?? Array(repeating: 1, count: r)
        let dilations = ints("dilations") ?? Array(repeating: 1, count: r)
        var begin = Array(repeating: 0, count: r), end = begin
        var autoPad = "NOTSET"
        if case .string(let s)? = node.attribute("auto_pad") { autoPad = String(decoding: s, as: UTF8.self) }
        if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            for i in 0..<r {
                let out = (spatial[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i])
                begin[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            }
        } else if autoPad == "NOTSET", let pads = ints("pads"), pads.count == 2 * r {
            begin = Array(pads[..<r])
            end = Array(pads[r...])
        }
        let g = ConvGeometry(batch: x[0], inChannels: x[1], outChannels: w[0], groups: group, input: spatial, kernel: kernel,
                             strides: strides, dilations: dilations, padBegin: begin, padEnd: end)
        if let problem = g.problem { throw ConversionError("layer '\(node.name)': \(problem)") }
        guard w[1] == g.inPerGroup else {
            throw ConversionError("layer '\(node.name)': weight \(w) does not fit \(x[1]) input channels in \(group) groups")
        }
        return g
    }

    /// `graph` with value `name` made a graph input fed with `value` (its producer removed, so
    /// the nodes only it needed are not run), and the feeds; nil when `name` is a graph input
    /// already or another output of its producer (not a Dropout's unread mask) is read.
    static func resumed(_ graph: IRGraph, at name: String, value: MBTensor, inputs: [String: MBTensor]) -> (graph: IRGraph, feeds: [String: MBTensor])? {
        guard !graph.inputs.contains(where: { $0.name == name }),
              let producer = graph.nodes.firstIndex(where: { $0.outputs.contains(name) }) else { return nil }
        let others = Set(graph.nodes[producer].outputs.filter { !$0.isEmpty && $0 != name })
        guard !graph.outputs.contains(where: { others.contains($0.name) }),
              !graph.nodes.contains(where: { $0.inputs.contains(where: others.contains) }) else { return nil }
        var cut = graph
        cut.nodes.remove(at: producer)
        cut.inputs.append(IRValueInfo(name: name, elementType: value.elementType, shape: value.shape.map { .fixed(Int64($0)) }))
        var feeds = inputs
        feeds[name] = value
        return (cut, feeds)
    }

    /// Runs `graph` on `inputs` and returns the named values (graph inputs are returned as given).
    /// Only the named values are the run's outputs, so the nodes after them are not run.
    static func run(_ graph: IRGraph, exposing names: [String], opsets: [IROpset], inputs: [String: MBTensor], threads: Int,
                    transforms: [String: (MBTensor) -> MBTensor]) throws -> [String: MBTensor] {
        var g = graph
        let inputNames = Set(graph.inputs.map(\.name))
        var seen = Set<String>()
        g.outputs = []
        for name in names where !inputNames.contains(name) && !seen.contains(name) {
            g.outputs.append(graph.outputs.first { $0.name == name } ?? IRValueInfo(name: name, elementType: .float, shape: nil))
            seen.insert(name)
        }
        if g.outputs.isEmpty {
            return Dictionary(names.compactMap { name in inputs[name].map { (name, $0) } }, uniquingKeysWith: { a, _ in a })
        }
        var values = try MBModel(ir: IRModel(graph: g, opsets: opsets), options: Calibration.modelOptions).makeSession(.init(threads: threads)).run(inputs, transforming: transforms)
        for name in names where inputNames.contains(name) { values[name] = inputs[name] }
        return values
    }
}
