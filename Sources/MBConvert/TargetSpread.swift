import MBBinarize
import MBCore
import MBPolicy

/// `target: {average_bits: B}`: spreads bits over the weights whose rule leaves storage to the
/// target so that the average bitwidth over EVERY binarized weight (pinned ones included) is B,
/// with the least total squared weight error.
///
/// Greedy on error reduction per extra bit: every target layer starts at 1 bit; a step raises
/// one layer's average by 0.1 bit (or a few steps at once), and each step goes to the layer
/// whose move removes the most squared error per added sign bit. A rung's P is the one the
/// average search (AverageBitsSearch) picks for that average; errors are measured on a seeded
/// subsample and scaled to the whole tensor by its energy.
public enum TargetSpread {
    public static let step = 0.1
    /// How many rungs ahead a layer's next move may reach.
    public static let lookahead = 3

    public struct Infeasible: Error, Sendable {
        public var position: SourcePosition
        public var message: String
    }

    /// The plans the spread decides (binarized, storage left to the target), in plan order.
    static func targetLayers(_ plans: [ConversionPlan]) -> [Int] {
        plans.indices.filter { i in
            guard case .binarize(let b) = plans[i].decision.action, case .target = b.allocation else { return false }
            return true
        }
    }

    /// Sign bits MBBinarize stores for `mix` on this tensor (per-channel rounding included).
    static func realizedSignBits(_ mix: BitDistribution, _ plan: ConversionPlan) -> Int {
        guard case .binarize(let b) = plan.decision.action else { return 0 }
        return StoragePrediction.binarized(mix, elements: plan.tensor.elementCount, groups: b.scale == .channel ? plan.tensor.channelCount : 1).signBits
    }

    /// `sensitivity` (plan index → α, `allocate: sensitivity`): a rung's cost is α · e², the
    /// predicted output error (Sensitivity), instead of the squared weight error e² · ‖T‖².
    static func spread(_ plans: inout [ConversionPlan], target: Policy.Target, discovery: WeightDiscovery,
                       sensitivity: [Int: Double]? = nil) throws {
        var layers: [Int] = []
        var pinnedBits = 0.0
        var total = 0
        for (i, p) in plans.enumerated() {
            guard case .binarize(let b) = p.decision.action else { continue }
            total += p.tensor.elementCount
            switch b.allocation {
            case .target: layers.append(i)
            case .mix(let m): pinnedBits += Double(realizedSignBits(m, p))
            case .average(let a): pinnedBits += a * Double(p.tensor.elementCount)
            }
        }
        guard !layers.isEmpty, total > 0 else { return }
        let need = target.averageBits * Double(total) - pinnedBits
        let free = layers.reduce(0) { $0 + plans[$1].tensor.elementCount }
        let low = Double(free), high = Double(free * target.maxBits)
        guard need >= low - 1e-6 else {
            let floor = formatNumber(((pinnedBits + low) / Double(total) * 1000).rounded() / 1000)
            throw Infeasible(position: target.position, message:
                "target average_bits \(formatNumber(target.averageBits)) cannot be met: with every target layer at 1 bit the average is already \(floor)")
        }
        guard need <= high + 1e-6 else {
            let ceiling = formatNumber(((pinnedBits + high) / Double(total) * 1000).rounded() / 1000)
            throw Infeasible(position: target.position, message:
                "target average_bits \(formatNumber(target.averageBits)) cannot be met: with every target layer at max_bits \(target.maxBits) the average reaches only \(ceiling)")
        }

        // Each layer climbs a ladder of averages 1.0, 1.1, ... max_bits; a rung's P is the best the
        // average search finds there, and its squared error is scaled from the sample to the tensor.
        struct Layer {
            var plan: Int
            var sample: FloatTensor
            var energy: Double
            var method: MaskMethod
            var rung = 0
            var rungs: [Int: AverageBitsSearch.Outcome] = [:]
            /// Sign bits per rung, remembered: the climb asks for them at every step.
            var bits: [Int: Double] = [:]
        }
        func realizedBits(_ layer: inout Layer, _ rung: Int) throws -> Double {
            if let known = layer.bits[rung] { return known }
            _ = try squaredError(&layer, rung)
            let bits = Double(realizedSignBits(layer.rungs[rung]!.mix, plans[layer.plan]))
            layer.bits[rung] = bits
            return bits
        }
        let topRung = Int(((Double(target.maxBits) - 1) / step).rounded())
        // With sensitivities the climb looks up the WHOLE ladder: Middle-Out's error is flat or
        // worse from about 1.8 bits until the next bit width (HBB.md's table: 4/3/3 is worse than
        // 4/4/2), so a 3-rung view leaves every layer stuck on that plateau, and the budget then
        // goes to the moves that hurt least, i.e. to the LEAST sensitive layers. The weight-error
        // spread keeps its documented 3-rung lookahead (its results are pinned).
        let reach = sensitivity == nil ? lookahead : topRung
        func average(_ rung: Int) -> Double { (10 + Double(rung)) / 10 }
        func squaredError(_ layer: inout Layer, _ rung: Int) throws -> Double {
            if layer.rungs[rung] == nil {
                layer.rungs[rung] = try AverageBitsSearch.best(average: average(rung), maxBits: target.maxBits, sample: layer.sample, method: layer.method)
            }
            let e = layer.rungs[rung]!.normalizedError
            return e * e * layer.energy
        }
        var state: [Layer] = []
        for i in layers {
            guard case .binarize(let b) = plans[i].decision.action else { continue }
            let sample = try AverageBitsSearch.sample(discovery: discovery, tensor: plans[i].tensor, scale: b.scale)
            let meanSquare = sample.values.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, sample.values.count))
            let energy = sensitivity.map { $0[i] ?? 0 } ?? meanSquare * Double(plans[i].tensor.elementCount)
            state.append(Layer(plan: i, sample: sample, energy: energy, method: b.method))
        }
        // Bits are counted as MBBinarize will realize them (rounding per channel for channel
        // scales), so the model-wide average lands on the target, not just its nominal sum.
        var spent = low
        while spent < need - 1e-6 {
            // Error removed per added sign bit, looking a few rungs ahead: at a fixed average
            // some P are worse than the rung below, and a one-rung view would stall there.
            // Moves that would pass the budget wait until nothing else fits; then the smallest
            // move finishes the climb.
            var best: (layer: Int, rung: Int, gain: Double)?
            var smallest: (layer: Int, rung: Int, bits: Double)?
            for k in state.indices where state[k].rung < topRung {
                let here = try squaredError(&state[k], state[k].rung)
                let hereBits = try realizedBits(&state[k], state[k].rung)
                for r in (state[k].rung + 1)...min(topRung, state[k].rung + reach) {
                    let extra = try realizedBits(&state[k], r) - hereBits
                    if extra > 0, smallest == nil || extra < smallest!.bits { smallest = (k, r, extra) }
                    guard spent + extra <= need + 1e-6 else { continue }
                    let removed = here - (try squaredError(&state[k], r))
                    let gain: Double
                    if extra <= 0 {
                        // Per-channel rounding can make a higher rung no dearer: take it only if it helps.
                        guard removed > 0 else { continue }
                        gain = .infinity
                    } else {
                        gain = removed / extra
                    }
                    if let b = best {
                        let better = gain > b.gain * (1 + 1e-12) + 1e-300
                        let tie = !better && gain >= b.gain * (1 - 1e-12) - 1e-300
                        // Ties (e.g. constant tensors, error 0 everywhere) go to the layer with
                        // the fewest bits so far, then the earlier one: an even spread.
                        if better || (tie && state[k].rung < state[b.layer].rung) { best = (k, r, gain) }
                    } else {
                        best = (k, r, gain)
                    }
                }
            }
            if best == nil, let s = smallest { best = (s.layer, s.rung, 0) }
            guard let pick = best else { break }
            spent += try realizedBits(&state[pick.layer], pick.rung) - (try realizedBits(&state[pick.layer], state[pick.layer].rung))
            state[pick.layer].rung = pick.rung
        }
        for k in state.indices { _ = try squaredError(&state[k], state[k].rung) }
        for layer in state {
            plans[layer.plan].requestedAverage = average(layer.rung)
            plans[layer.plan].mix = layer.rungs[layer.rung]?.mix
        }
    }
}
