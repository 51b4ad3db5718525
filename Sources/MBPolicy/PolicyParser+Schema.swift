import MBCore
import Yams

/// The key tables: one place that says which key may appear where. Adding a setting (such as
/// `activations:` or `granularity:`) means a row here and a reader in PolicyParser+Settings.
enum PolicyKeys {
    static let top = ["version", "target", "rules", "default", "images"]
    static let rule = ["match", "label"] + settings
    static let match = ["name", "tensor", "op", "position", "min_elements", "max_elements", "depthwise", "kernel"]
    static let settings = ["mix", "average", "bits", "int", "palette", "method", "scale", "refit", "calibrate", "fit", "damping", "scale_type", "keep", "granularity", "activations"]
    /// Keys of `activations: {...}` (the layer's input binarized at inference time).
    static let activations = ["mix", "bits", "method", "granularity"]
    /// Exactly one of these decides how a tensor is stored.
    static let storage = ["mix", "average", "bits", "keep", "int", "palette"]
    /// Keys of `int: {...}` and `palette: {...}`.
    static let linear = ["bits", "clip"]
    static let palette = ["bits", "channels"]
    /// Options that apply to `int:` and `palette:` (the others are about binarization).
    static let quantizeOptions = ["calibrate", "scale_type", "activations"]
    static let target = ["average_bits", "max_bits", "allocate"]
    /// Keys of `images: {...}` (how PNG/JPEG calibration images become inputs).
    static let images = ["resize", "crop", "channels", "scale", "mean", "std", "layout"]
    /// The ops whose weight inputs are weights (what `op:` usually names).
    static let weightedOps = WeightedOp.allCases.map(\.rawValue)
}

extension SchemaReader {
    mutating func policy(_ root: Node, text: String) -> Policy? {
        guard let top = entries(root, "a policy is a mapping of keys (\(PolicyKeys.top.joined(separator: ", ")))") else { return nil }
        checkKeys(top, allowed: PolicyKeys.top, elsewhere: Self.misplacedAtTop)
        func value(_ key: String) -> Entry? { top.first { $0.key == key } }

        var version: Int?
        if let v = value("version") {
            if let n = int(v.value, "version must be an integer") {
                if n == Policy.supportedVersion {
                    version = n
                } else {
                    error(Self.position(v.value), "unsupported policy version \(n); this mbconvert reads version \(Policy.supportedVersion)")
                }
            }
        } else {
            error(Self.position(root), "missing 'version: \(Policy.supportedVersion)'; every policy states its format version")
        }

        let target = value("target").flatMap { self.target($0) }
        // An invalid target was reported already; rules relying on it are not errors too.
        let hasTarget = value("target") != nil
        var rules: [Policy.Rule] = []
        if let r = value("rules") {
            if case .sequence(let seq) = r.value {
                for item in Array(seq) {
                    if let rule = self.rule(item, index: rules.count + 1, hasTarget: hasTarget) { rules.append(rule) }
                }
            } else if !Self.isNull(r.value) {
                error(Self.position(r.value), "rules must be a list of rules, each starting with '- ', got \(Self.describe(r.value))")
            }
        }
        var defaultSettings: Policy.Settings?
        if let d = value("default"), let e = entries(d.value, "default must be a mapping of settings (\(PolicyKeys.settings.joined(separator: ", ")))") {
            checkKeys(e, allowed: PolicyKeys.settings, elsewhere: Self.misplacedInDefault)
            defaultSettings = settings(e, at: Self.position(d.keyNode), owner: "default", hasTarget: hasTarget)
        }
        if let target, !rules.contains(where: { $0.settings.storage == .target }), defaultSettings?.storage != .target {
            warning(target.position, "target has no effect: every rule and the default state their own mix, bits, average or keep")
        }
        let images = value("images").flatMap { self.images($0) }
        guard let version else { return nil }
        var policy = Policy(file: file, text: text, version: version, rules: rules, defaultSettings: defaultSettings,
                            defaultPosition: value("default").map { Self.position($0.keyNode) }, target: target)
        policy.images = images
        return policy
    }

    static let misplacedAtTop: [String: String] = {
        var m: [String: String] = [:]
        for k in PolicyKeys.settings { m[k] = "is a setting; put it under 'default:' or in a rule" }
        for k in PolicyKeys.match { m[k] = "is a condition; put it under 'match:' in a rule" }
        m["match"] = "belongs in a rule: rules: [{match: ..., bits: 2}]"
        m["average_bits"] = "belongs under 'target:'"
        return m
    }()

    static let misplacedInDefault: [String: String] = {
        var m: [String: String] = [:]
        for k in PolicyKeys.match { m[k] = "is a condition; 'default' has none (it covers the weights no rule matches)" }
        m["match"] = "has no place in 'default', which covers the weights no rule matches"
        m["label"] = "has no place in 'default'"
        return m
    }()

    static let misplacedInRule: [String: String] = {
        var m: [String: String] = [:]
        for k in PolicyKeys.match { m[k] = "is a condition; put it under 'match:'" }
        m["average_bits"] = "belongs under the top-level 'target:'; in a rule write 'average:'"
        return m
    }()

    mutating func target(_ entry: Entry) -> Policy.Target? {
        guard let e = entries(entry.value, "target must be a mapping such as {average_bits: 1.6}") else { return nil }
        checkKeys(e, allowed: PolicyKeys.target)
        var maxBits = 3
        var ok = true
        if let m = e.first(where: { $0.key == "max_bits" }) {
            if let n = int(m.value, "max_bits must be an integer from 1 to 8") {
                if BitDistribution.bitRange.contains(n) { maxBits = n } else {
                    error(Self.position(m.value), "max_bits must be from 1 to 8, got \(n)")
                    ok = false
                }
            } else { ok = false }
        }
        var allocate = TargetAllocation.weightError
        if let m = e.first(where: { $0.key == "allocate" }) {
            if let v = choice(m.value, "allocate", TargetAllocation.self) { allocate = v } else { ok = false }
        }
        guard let a = e.first(where: { $0.key == "average_bits" }) else {
            error(Self.position(entry.keyNode), "target needs 'average_bits', e.g. target: {average_bits: 1.6}")
            return nil
        }
        guard let b = number(a.value, "average_bits must be a number of bits"), ok else { return nil }
        guard b >= 1, b <= Double(maxBits) else {
            error(Self.position(a.value), "average_bits must be from 1 to \(maxBits) (max_bits), got \(formatNumber(b))")
            return nil
        }
        return Policy.Target(averageBits: b, maxBits: maxBits, allocate: allocate, position: Self.position(entry.keyNode))
    }

    /// `images: {resize: 256, crop: 224, channels: rgb, scale: 1, mean: [...], std: [...], layout: nchw}`.
    mutating func images(_ entry: Entry) -> Policy.Images? {
        guard let e = entries(entry.value, "images must be a mapping such as {resize: 256, crop: 224}") else { return nil }
        checkKeys(e, allowed: PolicyKeys.images)
        var out = Policy.Images(position: Self.position(entry.keyNode))
        var ok = true
        /// 224, "48x192" or [48, 192]: (height, width), and whether one number was given.
        func size(_ node: Node, _ key: String) -> (Int, Int, single: Bool)? {
            let what = "\(key) must be a size: a number, HxW like 48x192, or [height, width]"
            if case .sequence(let seq) = node {
                let items = Array(seq)
                guard items.count == 2 else { error(Self.position(node), "\(what), got \(Self.describe(node))"); return nil }
                guard let h = int(items[0], what), let w = int(items[1], what) else { return nil }
                guard h >= 1, w >= 1 else { error(Self.position(node), "\(key) sizes must be at least 1"); return nil }
                return (h, w, false)
            }
            if case .scalar(let s) = node, SchemaReader.tagName(node) == .int, let n = Int.construct(from: s) {
                guard n >= 1 else { error(Self.position(node), "\(key) must be at least 1, got \(n)"); return nil }
                return (n, n, true)
            }
            if case .scalar(let s) = node {
                let parts = s.string.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                if parts.count == 2, let h = parts[0], let w = parts[1], h >= 1, w >= 1 { return (h, w, false) }
            }
            error(Self.position(node), "\(what), got \(Self.describe(node))")
            return nil
        }
        for item in e {
            switch item.key {
            case "resize":
                if let (h, w, single) = size(item.value, "resize") { out.resize = single ? .shorterSide(h) : .exact(height: h, width: w) } else { ok = false }
            case "crop":
                if let (h, w, _) = size(item.value, "crop") { out.crop = (h, w) } else { ok = false }
            case "channels":
                if let v = choice(item.value, "channels", [("rgb", "rgb"), ("bgr", "bgr"), ("gray", "gray")]) { out.channels = v } else { ok = false }
            case "layout":
                if let v = choice(item.value, "layout", [("nchw", "nchw"), ("nhwc", "nhwc")]) { out.layout = v } else { ok = false }
            case "scale":
                if let v = number(item.value, "scale must be 1 (values in [0, 1]) or 255 (values in [0, 255])") {
                    if v == 1 || v == 255 { out.scale = v } else {
                        error(Self.position(item.value), "scale must be 1 (values in [0, 1]) or 255 (values in [0, 255]), got \(formatNumber(v))")
                        ok = false
                    }
                } else { ok = false }
            case "mean", "std":
                let what = "\(item.key) must be a number or a list of numbers (one per channel)"
                if let values = oneOrMany(item.value, what, { r, n in r.number(n, what) }) {
                    if item.key == "std", values.contains(0) {
                        error(Self.position(item.value), "std must not be 0")
                        ok = false
                    }
                    if item.key == "mean" { out.mean = values } else { out.std = values }
                } else { ok = false }
            default: break
            }
        }
        return ok ? out : nil
    }

    mutating func rule(_ node: Node, index: Int, hasTarget: Bool) -> Policy.Rule? {
        let at = Self.position(node)
        guard let e = entries(node, "a rule must be a mapping with 'match:' and settings") else { return nil }
        checkKeys(e, allowed: PolicyKeys.rule, elsewhere: Self.misplacedInRule)

        var label: String?
        if let l = e.first(where: { $0.key == "label" }) { label = text(l.value, "label must be text") }
        var match: Policy.Match?
        if let m = e.first(where: { $0.key == "match" }) {
            match = self.match(m)
        } else {
            error(at, "rule has no 'match:'; use 'default:' for the weights no rule matches")
        }
        let settings = self.settings(e.filter { PolicyKeys.settings.contains($0.key) }, at: at, owner: "rule", hasTarget: hasTarget)
        guard let match, let settings else { return nil }
        return Policy.Rule(index: index, position: at, label: label, match: match, settings: settings)
    }

    mutating func match(_ entry: Entry) -> Policy.Match? {
        guard let e = entries(entry.value, "match must be a mapping of conditions (\(PolicyKeys.match.joined(separator: ", ")))") else { return nil }
        var hints: [String: String] = [:]
        for k in PolicyKeys.settings { hints[k] = "is a setting, not a condition; write it beside 'match:'" }
        checkKeys(e, allowed: PolicyKeys.match, elsewhere: hints)
        var m = Policy.Match()
        var ok = true
        for item in e where PolicyKeys.match.contains(item.key) {
            let v = item.value
            switch item.key {
            case "name", "tensor":
                let what = item.key == "name" ? "name must be a node-name glob or re:regex (or a list of them)"
                                              : "tensor must be a tensor-name glob or re:regex (or a list of them)"
                guard let patterns = oneOrMany(v, what, { r, n in r.pattern(n, what) }) else { ok = false; continue }
                if item.key == "name" { m.nodeNames = patterns } else { m.tensorNames = patterns }
            case "op":
                guard let ops = oneOrMany(v, "op must be an op type such as Conv (or a list of them)", { r, n in r.opType(n) }) else { ok = false; continue }
                m.ops = ops
            case "position":
                guard let p = oneOrMany(v, "position must be first or last (or a list of them)", { r, n in
                    r.choice(n, "position", Policy.LayerPosition.self)
                }) else { ok = false; continue }
                m.positions = p
            case "min_elements", "max_elements":
                guard let n = int(v, "\(item.key) must be a non-negative integer") else { ok = false; continue }
                guard n >= 0 else {
                    error(Self.position(v), "\(item.key) must be a non-negative integer, got \(n)")
                    ok = false
                    continue
                }
                if item.key == "min_elements" { m.minElements = n } else { m.maxElements = n }
            case "depthwise":
                guard let b = bool(v, "depthwise must be true or false") else { ok = false; continue }
                m.depthwise = b
            case "kernel":
                guard let k = kernel(v) else { ok = false; continue }
                m.kernel = k
            default:
                break
            }
        }
        if let lo = m.minElements, let hi = m.maxElements, hi < lo, let at = e.first(where: { $0.key == "max_elements" }) {
            error(Self.position(at.value), "max_elements \(hi) is below min_elements \(lo); the rule can never match")
            ok = false
        }
        if ok, m.isEmpty, e.allSatisfy({ PolicyKeys.match.contains($0.key) }) {
            error(Self.position(entry.keyNode), "match needs at least one condition (\(PolicyKeys.match.joined(separator: ", "))); use 'default:' for everything else")
            ok = false
        }
        return ok ? m : nil
    }

    mutating func pattern(_ node: Node, _ what: String) -> NamePattern? {
        guard let s = text(node, what) else { return nil }
        do {
            return try NamePattern(s)
        } catch {
            self.error(Self.position(node), error.message)
            return nil
        }
    }

    /// Op types are case-sensitive in ONNX; a known op in the wrong case is certainly a typo.
    mutating func opType(_ node: Node) -> String? {
        guard let s = text(node, "op must be an op type such as Conv") else { return nil }
        if !PolicyKeys.weightedOps.contains(s), let known = PolicyKeys.weightedOps.first(where: { $0.lowercased() == s.lowercased() }) {
            error(Self.position(node), "unknown op '\(s)'; op types are case-sensitive: did you mean '\(known)'?")
            return nil
        }
        return s
    }

    /// `1x1`, `3x3`, `3` (1-D), or a list such as [1, 1].
    mutating func kernel(_ node: Node) -> [Int64]? {
        let what = "kernel must be spatial sizes such as 1x1, 3x3 or 3"
        if case .sequence(let seq) = node {
            var dims: [Int64] = []
            for item in Array(seq) {
                guard let n = int(item, what) else { return nil }
                guard n > 0 else {
                    error(Self.position(item), "\(what), got \(Self.describe(item))")
                    return nil
                }
                dims.append(Int64(n))
            }
            if dims.isEmpty { error(Self.position(node), "\(what), got an empty list") }
            return dims.isEmpty ? nil : dims
        }
        guard case .scalar(let s) = node, !Self.isNull(node) else {
            error(Self.position(node), "\(what), got \(Self.describe(node))")
            return nil
        }
        let parts = s.string.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        let dims = parts.compactMap { Int64($0) }.filter { $0 > 0 }
        guard !parts.isEmpty, dims.count == parts.count, dims.count <= 8 else {
            error(Self.position(node), "\(what), got \(Self.describe(node))")
            return nil
        }
        return dims
    }
}
