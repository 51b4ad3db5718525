import Foundation
import MBCore
import MBPolicy
import MBRuntime

/// `target: {average_bits: B, allocate: sensitivity}` (not in the paper, opt-in): spend
/// the bit budget where the model's OUTPUT suffers most, not where the weight error is largest.
///
/// Each target layer is probed once: that layer alone binarized at the target's average (P as
/// the average search picks it), every other weight float, its output statistics corrected as
/// `--calibrate` would correct them (when its rule calibrates), run on the first `maxInputs`
/// calibration inputs. The probe's output error (‖y − y_float‖² / ‖y_float‖² over every model
/// output) divided by its squared normalized weight error is the layer's sensitivity α: the
/// output error one unit of squared weight error costs in that layer. The spread (TargetSpread)
/// then climbs as usual, but a rung's cost is α · e², the predicted output error, instead of
/// the squared weight error. One model run per layer; deterministic (fixed inputs, no sampling
/// beyond the spread's seeded subsamples).
public enum Sensitivity {
    /// Calibration inputs a probe runs on (the first ones): enough to rank layers, few enough
    /// to probe every layer of a small CNN in seconds.
    public static let maxInputs = 16

    /// One target layer: its probe and what the spread gave it.
    public struct Layer: Codable, Sendable {
        public var tensor: String
        public var elements: Int
        /// P of the probe (the average search's pick at the target's average).
        public var probeMix: String
        /// Normalized weight error ‖T − T̂‖ / ‖T‖ of the probe.
        public var probeWeightError: Double
        /// ‖y − y_float‖² / ‖y_float‖² over the model's outputs with only this layer binarized.
        public var probeOutputError: Double
        /// probeOutputError / probeWeightError² (0 when the layer binarizes exactly).
        public var sensitivity: Double
        /// The average bits the spread gave the layer, and its P.
        public var averageBits: Double?
        public var mix: String?
    }

    /// Probes the target layers and re-spreads the target's bits by predicted output error;
    /// updates `prepared.plans` and returns the allocation for the report.
    /// The probes run the model whole, or in segments when its weights do not fit `budget`
    /// (`ModelRunner`): then the weights held at once are one segment's and the probed layer's.
    static func allocate(_ prepared: inout Conversion.Prepared, target: Policy.Target, inputs: [String: MBTensor],
                         threads: Int, budget: Int = MemoryBudget.defaultBytes) throws -> [Layer] {
        let layers = TargetSpread.targetLayers(prepared.plans)
        var runner = ModelRunner.forConversion(prepared, budget: budget, threads: threads).float
        var found = try probe(prepared, layers: layers, average: target.averageBits, maxBits: target.maxBits, inputs: inputs, runner: &runner)
        let alphas = Dictionary(uniqueKeysWithValues: zip(layers, found.map(\.sensitivity)))
        try TargetSpread.spread(&prepared.plans, target: target, discovery: prepared.discovery, sensitivity: alphas)
        for (k, i) in layers.enumerated() {
            found[k].averageBits = prepared.plans[i].requestedAverage
            found[k].mix = prepared.plans[i].mix?.policyText
        }
        return found
    }

    /// For `verify`: the P each target layer was given, as the conversion recorded it
    /// (`requestedMix` of its report row), instead of the weight-error spread `prepare` made.
    static func useRecordedMixes(_ prepared: inout Conversion.Prepared, layers: [ConversionReport.Layer]) {
        let recorded = Dictionary(layers.map { ($0.name, $0.requestedMix) }, uniquingKeysWith: { a, _ in a })
        for i in TargetSpread.targetLayers(prepared.plans) {
            guard let entries = recorded[prepared.plans[i].tensor.name] ?? nil,
                  let mix = BitDistribution(entries.map { ($0.bits, $0.fraction) }) else { continue }
            prepared.plans[i].mix = mix
        }
    }

    /// Probes every plan in `layers` (indices into `prepared.plans`, all binarized).
    static func probe(_ prepared: Conversion.Prepared, layers: [Int], average: Double, maxBits: Int,
                      inputs: [String: MBTensor], runner: inout ModelRunner) throws -> [Layer] {
        let feeds = inputs.mapValues { prefix($0, rows: maxInputs) }
        let modelOutputs = prepared.graph.outputs.map(\.name)
        // Outputs of the layers a probe corrects; the float run records their statistics.
        func corrected(_ plan: ConversionPlan) -> [(node: IRNode, output: String)] {
            guard case .binarize(let b) = plan.decision.action, b.calibrate else { return [] }
            let names = Set(plan.tensor.consumers.filter { WeightedOp(rawValue: $0.opType) != nil }.map(\.name))
            return prepared.graph.nodes.filter { names.contains($0.name) && !$0.outputs.isEmpty }.map { ($0, $0.outputs[0]) }
        }
        let watched = layers.flatMap { corrected(prepared.plans[$0]).map(\.output) }
        let floatOut = try runner.run(exposing(prepared.graph, watched), feeds: feeds)
        let probeAverage = min(Double(maxBits), max(1, (average * 10).rounded() / 10))

        var found: [Layer] = []
        for i in layers {
            var plan = prepared.plans[i]
            guard case .binarize(let b) = plan.decision.action else { continue }
            let sample = try AverageBitsSearch.sample(discovery: prepared.discovery, tensor: plan.tensor, scale: b.scale)
            plan.mix = try AverageBitsSearch.best(average: probeAverage, maxBits: maxBits, sample: sample, method: b.method).mix
            let outcome = try Conversion.convert(plan, constant: prepared.graph.constants[prepared.constantIndex[plan.tensor.name]!],
                                                 policy: prepared.policy)
            var graph = prepared.graph
            graph.constants[prepared.constantIndex[plan.tensor.name]!] = outcome.tensor
            var transforms: [String: (MBTensor) -> MBTensor] = [:]
            let targets = corrected(plan)
            for (node, output) in targets {
                guard let reference = floatOut[output] else { continue }
                transforms[output] = { y in
                    guard y.shape == reference.shape, y.shape.count >= 2 else { return y }
                    let ax = Calibration.axis(for: node, rank: y.shape.count)
                    let c = Calibration.correction(float: Calibration.channelStatistics(reference, axis: ax),
                                                   binarized: Calibration.channelStatistics(y, axis: ax))
                    return Calibration.apply(y, axis: ax, scale: c.scale, shift: c.shift)
                }
            }
            let out = try runner.run(exposing(graph, targets.map(\.output)), feeds: feeds, transforms: transforms)
            var diff = 0.0, energy = 0.0
            for name in modelOutputs {
                guard let x = floatOut[name], let y = out[name], x.elementType == .float, y.elementType == .float else { continue }
                for (a, c) in zip(x.floats, y.floats) {
                    diff += Double(a - c) * Double(a - c)
                    energy += Double(a) * Double(a)
                }
            }
            let outputError = diff / max(energy, 1e-30)
            let weightError = outcome.row.normalizedError ?? 0
            found.append(Layer(tensor: plan.tensor.name, elements: plan.tensor.elementCount, probeMix: plan.mix!.policyText,
                               probeWeightError: weightError, probeOutputError: outputError,
                               sensitivity: weightError > 0 ? outputError / (weightError * weightError) : 0))
        }
        return found
    }

    /// `graph` with `names` added to its outputs (so fusion keeps them and transforms reach them).
    static func exposing(_ graph: IRGraph, _ names: [String]) -> IRGraph {
        var g = graph
        var seen = Set(graph.outputs.map(\.name))
        for name in names where seen.insert(name).inserted { g.outputs.append(IRValueInfo(name: name, elementType: .float, shape: nil)) }
        return g
    }

    /// The first `rows` entries along axis 0 of a float tensor (other tensors as they are).
    static func prefix(_ t: MBTensor, rows: Int) -> MBTensor {
        guard t.elementType == .float, let n = t.shape.first, n > rows else { return t }
        let inner = t.shape.dropFirst().reduce(1, *)
        return MBTensor(shape: [rows] + t.shape.dropFirst(), floats: Array(t.floats.prefix(rows * inner)))
    }
}
