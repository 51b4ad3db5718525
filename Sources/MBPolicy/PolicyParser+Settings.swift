import MBCore
import Yams

/// Settings shared by rules and `default`: one storage key (mix, bits, average or keep) plus the
/// binarization options.
extension SchemaReader {
    mutating func settings(_ e: [Entry], at: SourcePosition, owner: String, hasTarget: Bool) -> Policy.Settings? {
        var ok = true
        // One storage key: a second one contradicts the first, whatever its value.
        let storageEntries = e.filter { PolicyKeys.storage.contains($0.key) }
        if let first = storageEntries.first {
            for other in storageEntries.dropFirst() {
                error(other.position, "'\(other.key)' conflicts with '\(first.key)' at \(first.position); a \(owner) states one of mix, bits, average, keep, int, palette")
                ok = false
            }
        }
        var storage: Policy.Storage?
        if let s = storageEntries.first {
            switch s.key {
            case "mix": storage = mix(s.value).map { .distribution($0) }
            case "bits": storage = bits(s.value).flatMap { try? BitDistribution.homogeneous($0) }.map { .distribution($0) }
            case "average": storage = average(s.value).map { .average($0) }
            case "keep": storage = choice(s.value, "keep", noun: "keep type", Policy.keepTypes.map { ($0.name, $0.type) }).map { .keep($0) }
            case "int": storage = quantization(s.value, .linear).map { .quantize($0) }
            case "palette": storage = quantization(s.value, .palette).map { .quantize($0) }
            default: break
            }
            if storage == nil { ok = false }
        } else if hasTarget {
            storage = .target
        } else {
            error(at, "\(owner) states none of mix, bits, average, keep, int, palette (or add a whole-model 'target:' to spread bits)")
            ok = false
        }

        var result = Policy.Settings(storage: storage ?? .target)
        for item in e {
            let valid: Bool
            switch item.key {
            case "method":
                // `saliency` is not a MaskMethod: it needs the output fit's statistics.
                let names = MaskMethod.allCases.map { ($0.rawValue, $0.rawValue) } + [(Self.saliencyMethod, Self.saliencyMethod)]
                let name = choice(item.value, "method", names)
                if name == Self.saliencyMethod { result.saliency = true } else { result.method = name.flatMap(MaskMethod.init(rawValue:)) }
                valid = name != nil
            case "scale":
                result.scale = choice(item.value, "scale", ScaleGranularity.self)
                valid = result.scale != nil
            case "refit":
                result.refit = refitMode(item.value)
                valid = result.refit != nil
            case "calibrate":
                result.calibrate = bool(item.value, "calibrate must be true or false")
                valid = result.calibrate != nil
            case "scale_type":
                result.scaleType = choice(item.value, "scale_type", noun: "scale type", Policy.keepTypes.map { ($0.name, $0.type) })
                valid = result.scaleType != nil
            case "fit":
                result.fit = choice(item.value, "fit", FitTarget.self)
                valid = result.fit != nil
            case "damping":
                result.damping = damping(item.value)
                valid = result.damping != nil
            case "granularity":
                result.granularity = granularity(item.value, activations: false)
                valid = result.granularity != nil
            case "activations":
                result.activations = activations(item.value)
                valid = result.activations != nil
                if !valid { ok = false }
                continue  // allowed with keep: float weights may still take binarized inputs
            default:
                continue
            }
            if !valid {
                ok = false
            } else if case .keep? = storage {
                error(item.position, "'\(item.key)' has no effect with 'keep': the tensor is not binarized")
                ok = false
            } else if case .quantize(let q)? = storage, !PolicyKeys.quantizeOptions.contains(item.key) {
                error(item.position, "'\(item.key)' has no effect with '\(q.scheme == .linear ? "int" : "palette")': the tensor is quantized, not binarized")
                ok = false
            } else if item.key == "method", storageEntries.first?.key == "bits" {
                warning(item.position, "'method' has no effect with 'bits': every entry gets the same bitwidth")
            }
        }
        if result.saliency == true, ok, let m = e.first(where: { $0.key == "method" }), storageEntries.first?.key != "bits" {
            if !(result.fit?.fitsOutput ?? false) {
                error(m.position, "method: saliency ranks mask groups by the layer's output error on the calibration inputs; it needs 'fit: output' (or 'fit: output-gain') in the same \(owner)")
                ok = false
            } else if result.granularity == nil || result.granularity == .element {
                error(m.position, "method: saliency chooses structured masks; add 'granularity: group:N' or 'granularity: channel' (per-entry masks use middle-out, top-down, bottom-up, random or residual-middle-out)")
                ok = false
            }
        }
        if let d = e.first(where: { $0.key == "damping" }), ok, !(result.fit?.fitsOutput ?? false) {
            warning(d.position, "'damping' has no effect without 'fit: output' or 'fit: output-gain': only the output fit is damped")
        }
        return ok ? result : nil
    }

    /// The `method:` value that selects structured masks by output saliency.
    static let saliencyMethod = "saliency"

    /// `damping: 0.1`: the output fit's λ as a fraction of mean diag(X_qᵀX_q), positive and finite.
    mutating func damping(_ node: Node) -> Double? {
        guard let d = number(node, "damping must be a positive number (a fraction of the mean diagonal of XᵀX), e.g. damping: 0.1") else { return nil }
        guard d.isFinite, d > 0 else {
            error(Self.position(node), "damping must be a positive finite number (a fraction of the mean diagonal of XᵀX), got \(Self.sourceText(node))")
            return nil
        }
        return d
    }

    /// `mix: {1: 0.7, 2: 0.2, 3: 0.1}`: bitwidths 1 to 8, fractions in [0, 1] summing to 1.
    mutating func mix(_ node: Node) -> BitDistribution? {
        guard let e = entries(node, "mix must map bitwidths to fractions, e.g. {1: 0.7, 2: 0.2, 3: 0.1}") else { return nil }
        guard !e.isEmpty else {
            error(Self.position(node), "mix is empty; give at least one bitwidth, e.g. {1: 0.7, 2: 0.2, 3: 0.1}")
            return nil
        }
        var pairs: [(bits: Int, fraction: Double)] = []
        var seen: [Int: SourcePosition] = [:]
        var ok = true
        for item in e {
            guard SchemaReader.tagName(item.keyNode) == .int, case .scalar(let k) = item.keyNode, let b = Int.construct(from: k) else {
                error(item.position, "mix keys are bitwidths from 1 to 8, got '\(Self.truncated(item.key))'")
                ok = false
                continue
            }
            guard BitDistribution.bitRange.contains(b) else {
                error(item.position, "bitwidth must be from 1 to 8, got \(b)")
                ok = false
                continue
            }
            if let earlier = seen[b] {
                // `1` and `01` are different YAML keys but the same bitwidth.
                error(item.position, "bitwidth \(b) appears twice in mix (first at \(earlier))")
                ok = false
                continue
            }
            seen[b] = item.position
            guard let p = number(item.value, "fraction for \(b)-bit must be a number") else {
                ok = false
                continue
            }
            guard p >= 0, p <= 1 else {
                error(Self.position(item.value), "fraction for \(b)-bit must be in [0, 1], got \(Self.sourceText(item.value))")
                ok = false
                continue
            }
            pairs.append((b, p))
        }
        guard ok else { return nil }
        let sum = pairs.reduce(0) { $0 + $1.fraction }
        guard abs(sum - 1) <= BitDistribution.sumTolerance else {
            error(Self.position(node), "fractions must sum to 1 (within 1e-6), got \(formatNumber(sum))")
            return nil
        }
        return BitDistribution(pairs)
    }

    /// `int: 4`, `int: {bits: 4, clip: mse}`, `palette: 2`, `palette: {bits: 2, channels: 32}`.
    mutating func quantization(_ node: Node, _ scheme: QuantizedTensor.Scheme) -> QuantizationSpec? {
        let key = scheme == .linear ? "int" : "palette"
        let range = scheme == .linear ? 2...8 : 1...8
        func bitsValue(_ n: Node, _ s: inout SchemaReader) -> Int? {
            guard let b = s.int(n, "\(key) bits must be an integer from \(range.lowerBound) to 8") else { return nil }
            guard range.contains(b) else {
                s.error(Self.position(n), "\(key) bits must be from \(range.lowerBound) to 8, got \(b)")
                return nil
            }
            return b
        }
        if case .scalar = node { return bitsValue(node, &self).map { QuantizationSpec(scheme: scheme, bits: $0) } }
        let example = scheme == .linear ? "{bits: 4, clip: mse}" : "{bits: 2, channels: 32}"
        guard let e = entries(node, "\(key) must be a number of bits or a mapping such as \(example)") else { return nil }
        checkKeys(e, allowed: scheme == .linear ? PolicyKeys.linear : PolicyKeys.palette)
        var spec = QuantizationSpec(scheme: scheme, bits: 0)
        var ok = e.allSatisfy { (scheme == .linear ? PolicyKeys.linear : PolicyKeys.palette).contains($0.key) }
        for item in e {
            switch item.key {
            case "bits": if let b = bitsValue(item.value, &self) { spec.bits = b } else { ok = false }
            case "clip": if let c = choice(item.value, "clip", ClipMode.self) { spec.clip = c } else { ok = false }
            case "channels":
                if let n = int(item.value, "channels must be a whole number of output channels per palette (≥ 1)"), n >= 1 {
                    spec.channels = n
                } else {
                    if case .scalar(let s) = item.value, SchemaReader.tagName(item.value) == .int, Int.construct(from: s) != nil {
                        error(Self.position(item.value), "channels must be at least 1, got \(Self.sourceText(item.value))")
                    }
                    ok = false
                }
            default: break
            }
        }
        if !e.contains(where: { $0.key == "bits" }) {
            error(Self.position(node), "\(key) needs 'bits:', e.g. \(key): \(example)")
            ok = false
        }
        return ok ? spec : nil
    }

    mutating func bits(_ node: Node) -> Int? {
        guard let b = int(node, "bits must be an integer from 1 to 8") else { return nil }
        guard BitDistribution.bitRange.contains(b) else {
            error(Self.position(node), "bitwidth must be from 1 to 8, got \(b)")
            return nil
        }
        return b
    }

    mutating func average(_ node: Node) -> Double? {
        guard let b = number(node, "average must be a number of bits from 1 to 8") else { return nil }
        guard b >= 1, b <= 8 else {
            error(Self.position(node), "average must be from 1 to 8 bits, got \(Self.sourceText(node))")
            return nil
        }
        return b
    }

    /// `element`, `group:N` (N >= 1) or `channel` (weights only).
    mutating func granularity(_ node: Node, activations: Bool) -> MaskGranularity? {
        let what = activations ? "granularity must be element or group:N (N >= 1)" : "granularity must be element, group:N (N >= 1) or channel"
        guard let s = text(node, what) else { return nil }
        guard let g = MaskGranularity(parsing: s), !(activations && g == .channel) else {
            error(Self.position(node), "\(what), got '\(Self.truncated(s))'")
            return nil
        }
        return g
    }

    /// `activations: {mix: {...} | bits: n, method: middle-out, granularity: ...}`.
    mutating func activations(_ node: Node) -> ActivationSpec? {
        guard let e = entries(node, "activations must be a mapping such as {mix: {1: 0.7, 2: 0.2, 3: 0.1}}") else { return nil }
        checkKeys(e, allowed: PolicyKeys.activations)
        var mix: BitDistribution?
        var granularity = MaskGranularity.element
        var ok = true
        let storage = e.filter { $0.key == "mix" || $0.key == "bits" }
        if storage.count > 1 {
            error(storage[1].position, "'\(storage[1].key)' conflicts with '\(storage[0].key)' at \(storage[0].position); activations state one of mix, bits")
            ok = false
        }
        for item in e {
            switch item.key {
            case "mix": mix = self.mix(item.value); if mix == nil { ok = false }
            case "bits": mix = self.bits(item.value).flatMap { try? BitDistribution.homogeneous($0) }; if mix == nil { ok = false }
            case "method":
                if let m = choice(item.value, "method", MaskMethod.self) {
                    if m != .middleOut {
                        error(Self.position(item.value), "activations are binarized at run time by middle-out only, got \(m.rawValue)")
                        ok = false
                    }
                } else { ok = false }
            case "granularity":
                if let g = self.granularity(item.value, activations: true) { granularity = g } else { ok = false }
            default: ok = false
            }
        }
        if storage.isEmpty {
            error(Self.position(node), "activations need 'mix:' or 'bits:', e.g. activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}}")
            ok = false
        }
        guard ok, let mix else { return nil }
        return ActivationSpec(distribution: mix, granularity: granularity)
    }

    /// A scalar as written in the file (so "got 1.20" shows what the user typed).
    static func sourceText(_ node: Node) -> String {
        if case .scalar(let s) = node { return truncated(s.string) }
        return describe(node)
    }
}
