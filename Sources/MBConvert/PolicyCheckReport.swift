import MBPolicy

/// Everything `policy check` found: diagnostics, the rules, and with a model one row per tensor
/// the policy decides about. Rendered as text (PolicyCheckReport+Text.swift) or JSON.
public struct PolicyCheckReport: Codable, Sendable {
    public struct Diagnostic: Codable, Sendable {
        public var file: String
        public var line: Int
        public var column: Int
        public var severity: String
        public var message: String
        /// `policy.txt:3:5: message` (warnings say so).
        public var text: String
    }

    public struct Rule: Codable, Sendable {
        public var name: String
        public var line: Int
        /// The conditions as written ("op: Conv, kernel: 1x1").
        public var match: String
        /// The settings with defaults filled in ("mix {1: 0.7, ...}, middle-out, tensor scale").
        public var settings: String
        /// Tensors it governs in the model (nil without a model).
        public var tensors: Int?
    }

    public struct Fraction: Codable, Sendable, Equatable {
        public var bits: Int
        public var fraction: Double
    }

    public struct Row: Codable, Sendable {
        public var tensor: String
        public var ops: [String]
        public var shape: [Int]
        public var elements: Int
        public var source: String
        public var isWeight: Bool
        /// "first", "last", "depthwise" as they apply.
        public var facts: [String]
        public var rule: String
        /// "binarize", "quantize" or "keep".
        public var action: String
        public var keep: String?
        /// `int:` / `palette:` weights: "int4", "palette2 per 32 channels", ...
        public var quantizer: String?
        /// P (nil when kept); for `average`/`target` the one the search chose.
        public var p: [Fraction]?
        /// "mix", "bits", "average 1.5", "target 1.6" — how P was decided.
        public var allocation: String?
        public var method: String?
        public var scale: String?
        public var refit: Bool?
        /// "alternating" for `refit: alternating` (absent otherwise, so older reports read the same).
        public var refitMode: String?
        public var averageBits: Double?
        public var predicted: StoragePrediction
        public var bitsPerWeight: Double
        public var bytes: Int
    }

    public struct Totals: Codable, Sendable {
        public var weights: Int
        public var weightElements: Int
        public var binarized: Int
        public var binarizedElements: Int
        public var kept: Int
        /// Weights stored by `int:` or `palette:` (absent when none).
        public var quantized: Int?
        /// Other tensors a rule named (not weights).
        public var others: Int
        /// Sign bits per binarized weight: the model-wide average bitwidth.
        public var averageBits: Double
        public var predictedBytes: Int
        /// The same tensors as float32.
        public var float32Bytes: Int
        /// Predicted bits per weight over every listed tensor, everything counted.
        public var bitsPerWeight: Double
    }

    public var policyFile: String
    public var modelFile: String?
    public var version: Int?
    public var target: Double?
    /// "sensitivity" for `target: {allocate: sensitivity}` (absent for the default weight-error spread).
    public var targetAllocation: String?
    public var rules: [Rule] = []
    public var defaultRule: String?
    public var defaultTensors: Int?
    public var rows: [Row] = []
    public var totals: Totals?
    public var diagnostics: [Diagnostic] = []

    public init(policyFile: String, modelFile: String?) {
        self.policyFile = policyFile
        self.modelFile = modelFile
    }

    public var errorCount: Int { diagnostics.filter { $0.severity == "error" }.count }
    public var warningCount: Int { diagnostics.filter { $0.severity == "warning" }.count }

    mutating func add(_ d: [PolicyDiagnostic]) {
        diagnostics += d.map {
            Diagnostic(file: $0.file, line: $0.position.line, column: $0.position.column,
                       severity: $0.severity.rawValue, message: $0.message, text: $0.description)
        }
        diagnostics = diagnostics.enumerated().sorted { a, b in
            (a.element.line, a.element.column, a.offset) < (b.element.line, b.element.column, b.offset)
        }.map(\.element)
    }

    mutating func describe(_ policy: Policy) {
        version = policy.version
        target = policy.target?.averageBits
        targetAllocation = policy.target?.allocate == .sensitivity ? policy.target?.allocate.rawValue : nil
        rules = policy.rules.map {
            Rule(name: $0.displayName, line: $0.position.line, match: Self.describe($0.match), settings: Self.describe($0.settings), tensors: nil)
        }
        defaultRule = policy.defaultSettings.map { Self.describe($0) } ?? "none: weights no rule matches stay float32"
    }

    static func describe(_ m: Policy.Match) -> String {
        var parts: [String] = []
        func list(_ xs: [String]) -> String { xs.count == 1 ? xs[0] : "[" + xs.joined(separator: ", ") + "]" }
        if !m.nodeNames.isEmpty { parts.append("name: " + list(m.nodeNames.map(\.source))) }
        if !m.tensorNames.isEmpty { parts.append("tensor: " + list(m.tensorNames.map(\.source))) }
        if !m.ops.isEmpty { parts.append("op: " + list(m.ops)) }
        if !m.positions.isEmpty { parts.append("position: " + list(m.positions.map(\.rawValue))) }
        if let v = m.minElements { parts.append("min_elements: \(v)") }
        if let v = m.maxElements { parts.append("max_elements: \(v)") }
        if let v = m.depthwise { parts.append("depthwise: \(v)") }
        if let k = m.kernel { parts.append("kernel: " + k.map(String.init).joined(separator: "x")) }
        return parts.joined(separator: ", ")
    }

    static func describe(_ s: Policy.Settings) -> String {
        switch s.action {
        case .keep(let k): return "keep \(Policy.keepName(k))"
        case .quantize(let q): return q.spec.description + (q.scaleType == .float16 ? ", float16 values" : "")
        case .binarize(let b):
            let how: String
            switch b.allocation {
            case .mix(let m): how = m.isHomogeneous && m.entries.count == 1 ? "bits \(m.entries[0].bits)" : "mix \(m.policyText)"
            case .average(let a): how = "average \(formatNumber(a)) (P searched)"
            case .target: how = "bits from the target"
            }
            return "\(how), \(b.saliency ? "saliency" : b.method.rawValue), \(b.scale.rawValue) scale" + (b.refit == .off ? "" : b.refit == .alternating ? ", alternating refit" : ", refit")
        }
    }
}

extension PolicyCheckReport.Row {
    init(plan: ConversionPlan, policy: Policy) {
        let t = plan.tensor
        tensor = t.name
        var ops: [String] = []
        for c in t.consumers where !ops.contains(c.opType) { ops.append(c.opType) }
        self.ops = ops
        shape = t.shape
        elements = t.elementCount
        source = t.source.description
        isWeight = t.isWeight
        facts = (t.isFirst ? ["first"] : []) + (t.isLast ? ["last"] : []) + (t.isDepthwise ? ["depthwise"] : [])
        rule = policy.describe(plan.decision.source)
        predicted = plan.prediction
        bitsPerWeight = predicted.bitsPerWeight
        bytes = predicted.bytes
        switch plan.decision.action {
        case .keep(let k):
            action = "keep"
            keep = Policy.keepName(k)
        case .quantize(let q):
            action = "quantize"
            quantizer = q.spec.description + (q.scaleType == .float16 ? " float16" : "")
        case .binarize(let b):
            action = "binarize"
            p = plan.mix?.entries.map { PolicyCheckReport.Fraction(bits: $0.bits, fraction: $0.fraction) }
            switch b.allocation {
            case .mix(let m): allocation = m.entries.count == 1 ? "bits" : "mix"
            case .average(let a): allocation = "average \(formatNumber(a))"
            case .target: allocation = "target \(formatNumber(plan.requestedAverage ?? 0))"
            }
            method = b.saliency ? "saliency" : b.method.rawValue
            scale = b.scale.rawValue
            refit = b.refit != .off
            refitMode = b.refit == .alternating ? b.refit.rawValue : nil
            averageBits = predicted.averageBits
        }
    }
}

extension PolicyCheckReport.Totals {
    init(rows: [PolicyCheckReport.Row]) {
        let w = rows.filter(\.isWeight)
        weights = w.count
        weightElements = w.reduce(0) { $0 + $1.elements }
        let b = rows.filter { $0.action == "binarize" }
        binarized = b.count
        binarizedElements = b.reduce(0) { $0 + $1.elements }
        let q = rows.filter { $0.action == "quantize" }.count
        quantized = q == 0 ? nil : q
        kept = rows.count - b.count - q
        others = rows.count - w.count
        let signBits = b.reduce(0) { $0 + $1.predicted.signBits }
        averageBits = binarizedElements == 0 ? 0 : Double(signBits) / Double(binarizedElements)
        predictedBytes = rows.reduce(0) { $0 + $1.bytes }
        let elements = rows.reduce(0) { $0 + $1.elements }
        float32Bytes = elements * 4
        let bits = rows.reduce(0.0) { $0 + $1.predicted.totalBits }
        bitsPerWeight = elements == 0 ? 0 : bits / Double(elements)
    }
}
