import MBCore
/// What the policy decides for one tensor: what conversion consumes.
public struct WeightDecision: Sendable, Equatable {
    /// Which part of the policy decided.
    public enum Source: Sendable, Equatable {
        /// `rules[index]` (0-based into `Policy.rules`).
        case rule(Int)
        /// The `default:` settings.
        case defaultSettings
        /// No rule and no `default:`: the weight stays float32.
        case implicitDefault
    }

    public enum Action: Sendable, Equatable {
        case keep(ElementType)
        case binarize(Binarization)
        /// `int:` / `palette:`: codes into per-group scales or palettes.
        case quantize(Quantization)
    }

    public struct Quantization: Sendable, Equatable {
        public var spec: QuantizationSpec
        /// With `--calibrate`: correct the output statistics of the layers reading this weight.
        public var calibrate: Bool
        /// How scales or palette values are stored (`scale_type:`; float32 unless stated).
        public var scaleType: ElementType

        public init(spec: QuantizationSpec, calibrate: Bool = Binarization.defaultCalibrate, scaleType: ElementType = .float) {
            self.spec = spec
            self.calibrate = calibrate
            self.scaleType = scaleType
        }
    }

    public enum Allocation: Sendable, Equatable {
        /// P as the policy states it (`mix:` or `bits:`).
        case mix(BitDistribution)
        /// `average: B`: P is searched per tensor at conversion.
        case average(Double)
        /// Spread by the whole-model `target:` (decided with the whole model in view).
        case target
    }

    public struct Binarization: Sendable, Equatable {
        public var allocation: Allocation
        public var method: MaskMethod
        /// `method: saliency`: the structured mask is chosen by output saliency during the
        /// output fit (MBBinarize's SaliencyMask); `method` (middle-out) serves a layer that
        /// falls back to its weight-space binarization.
        public var saliency = false
        public var scale: ScaleGranularity
        public var refit: RefitMode
        public var granularity: MaskGranularity
        /// With `--calibrate`: correct the output statistics of the layers reading this weight.
        public var calibrate: Bool
        /// What the signs and scales are fitted to (`fit:`; the weights unless stated).
        public var fit: FitTarget
        /// The output fit's damping λ as a fraction of mean diag(X_qᵀX_q) (`damping:`; 0.01 unless stated).
        public var damping: Double = Self.defaultDamping
        /// How the level scales are stored (`scale_type:`; float32 unless stated).
        public var scaleType: ElementType = .float

        public init(allocation: Allocation, method: MaskMethod = Self.defaultMethod,
                    scale: ScaleGranularity = Self.defaultScale, refit: RefitMode = Self.defaultRefit,
                    granularity: MaskGranularity = .element, calibrate: Bool = Self.defaultCalibrate,
                    fit: FitTarget = Self.defaultFit) {
            self.fit = fit
            self.allocation = allocation
            self.method = method
            self.scale = scale
            self.refit = refit
            self.granularity = granularity
            self.calibrate = calibrate
        }

        /// What a rule gets when it does not say (documented in Schemas/policy.md).
        public static let defaultMethod = MaskMethod.middleOut
        public static let defaultScale = ScaleGranularity.tensor
        public static let defaultRefit = RefitMode.off
        public static let defaultCalibrate = true
        public static let defaultFit = FitTarget.weights
        /// MBBinarize's `OutputFit.dampingFraction` (MBPolicy does not import MBBinarize).
        public static let defaultDamping = 0.01

        func with(scaleType: ElementType, damping: Double?, saliency: Bool?) -> Binarization {
            var b = self
            b.saliency = saliency ?? false
            b.scaleType = scaleType
            b.damping = damping ?? Self.defaultDamping
            return b
        }
    }

    public var source: Source
    public var action: Action
    /// The consuming layer's input binarization, when the rule asks for it.
    public var activations: ActivationSpec?

    public init(source: Source, action: Action, activations: ActivationSpec? = nil) {
        self.source = source
        self.action = action
        self.activations = activations
    }
}

extension Policy.Settings {
    /// The decision these settings make, with unset options at their documented defaults.
    public var action: WeightDecision.Action {
        let allocation: WeightDecision.Allocation
        switch storage {
        case .keep(let k): return .keep(k)
        case .quantize(let spec):
            return .quantize(WeightDecision.Quantization(spec: spec, calibrate: calibrate ?? WeightDecision.Binarization.defaultCalibrate,
                                                         scaleType: scaleType ?? .float))
        case .distribution(let mix): allocation = .mix(mix)
        case .average(let b): allocation = .average(b)
        case .target: allocation = .target
        }
        return .binarize(WeightDecision.Binarization(
            allocation: allocation,
            method: method ?? WeightDecision.Binarization.defaultMethod,
            scale: scale ?? WeightDecision.Binarization.defaultScale,
            refit: refit ?? WeightDecision.Binarization.defaultRefit,
            granularity: granularity ?? .element,
            calibrate: calibrate ?? WeightDecision.Binarization.defaultCalibrate,
            fit: fit ?? WeightDecision.Binarization.defaultFit).with(scaleType: scaleType ?? .float, damping: damping, saliency: saliency))
    }
}

extension Policy.Match {
    /// All given conditions hold. Tensors that are not weights are reached only through a
    /// `tensor:` pattern (a bias is never caught by `op: Conv` alone).
    public func matches(_ s: PolicySubject) -> Bool {
        if !s.isWeight, tensorNames.isEmpty { return false }
        if !tensorNames.isEmpty, !tensorNames.contains(where: { $0.matches(s.tensorName) }) { return false }
        if !nodeNames.isEmpty, !s.consumers.contains(where: { c in nodeNames.contains { $0.matches(c.name) } }) { return false }
        if !ops.isEmpty, !s.consumers.contains(where: { ops.contains($0.opType) }) { return false }
        if !positions.isEmpty {
            let hit = positions.contains { $0 == .first ? s.isFirst : s.isLast }
            if !hit { return false }
        }
        if let lo = minElements, s.elementCount < lo { return false }
        if let hi = maxElements, s.elementCount > hi { return false }
        if let d = depthwise, s.isDepthwise != d { return false }
        if let k = kernel, s.kernel != k { return false }
        return true
    }
}

/// The outcome of resolving a policy against a model's tensors.
public struct PolicyResolution: Sendable {
    /// Parallel to the subjects; nil for a non-weight tensor no rule names (it stays as it is).
    public var decisions: [WeightDecision?]
    /// How many subjects each rule governs (parallel to `Policy.rules`).
    public var ruleCounts: [Int]
    /// How many weights fell to `default:` (or stayed float32 without one).
    public var defaultCount: Int
}

extension Policy {
    /// The first rule (in file order) whose conditions hold, else `default`. Non-weights that no
    /// rule names get nil.
    public func decision(for subject: PolicySubject) -> WeightDecision? {
        if let i = rules.firstIndex(where: { $0.match.matches(subject) }) {
            return WeightDecision(source: .rule(i), action: rules[i].settings.action, activations: rules[i].settings.activations)
        }
        guard subject.isWeight else { return nil }
        if let d = defaultSettings { return WeightDecision(source: .defaultSettings, action: d.action, activations: d.activations) }
        return WeightDecision(source: .implicitDefault, action: .keep(.float))
    }

    public func resolve(_ subjects: [PolicySubject]) -> PolicyResolution {
        var counts = [Int](repeating: 0, count: rules.count)
        var defaults = 0
        let decisions = subjects.map { s -> WeightDecision? in
            let d = decision(for: s)
            switch d?.source {
            case .rule(let i)?: counts[i] += 1
            case .defaultSettings?, .implicitDefault?: defaults += 1
            case nil: break
            }
            return d
        }
        return PolicyResolution(decisions: decisions, ruleCounts: counts, defaultCount: defaults)
    }

    /// One diagnostic per rule that governs nothing in this model: a warning, or an error when
    /// `strict`. Such a rule has a typo, does not fit this model, or is shadowed by an earlier
    /// rule (first match wins), which the message then names.
    public func unusedRuleDiagnostics(_ resolution: PolicyResolution, subjects: [PolicySubject], modelName: String, strict: Bool) -> [PolicyDiagnostic] {
        zip(rules, resolution.ruleCounts).compactMap { rule, count in
            guard count == 0 else { return nil }
            let name = rule.label.map { "rule '\($0)'" } ?? "rule \(rule.index)"
            var message = "\(name) matches no tensor in \(modelName)"
            let matched = subjects.indices.filter { rule.match.matches(subjects[$0]) }
            if !matched.isEmpty {
                let earlier = Set(matched.compactMap { i -> Int? in
                    if case .rule(let r)? = resolution.decisions[i]?.source { return r } else { return nil }
                }).sorted().map { rules[$0].displayName }
                message = "\(name) governs nothing in \(modelName): the \(matched.count) tensor(s) it matches go to earlier \(earlier.joined(separator: ", ")) (first match wins)"
            }
            return PolicyDiagnostic(file: file, position: rule.position, severity: strict ? .error : .warning, message: message)
        }
    }

    /// How a decision's source reads in reports: "rule 2 (line 14)", "default (line 30)".
    public func describe(_ source: WeightDecision.Source) -> String {
        switch source {
        case .rule(let i): return rules[i].displayName
        case .defaultSettings: return "default" + (defaultPosition.map { " (line \($0.line))" } ?? "")
        case .implicitDefault: return "no rule (float32)"
        }
    }
}

extension WeightDecision.Action {
    /// Binarized or quantized, and `calibrate:` not false: `--calibrate` corrects the layers
    /// reading this weight.
    public var calibrates: Bool {
        switch self {
        case .keep: return false
        case .binarize(let b): return b.calibrate
        case .quantize(let q): return q.calibrate
        }
    }
}
