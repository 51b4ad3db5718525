import MBCore

/// A parsed, validated policy file (format: `Schemas/policy.md`).
///
/// Rules are kept in file order because the first rule that matches a weight governs it.
public struct Policy: Sendable {
    /// The only format version this build reads.
    public static let supportedVersion = 1

    /// The file name used in diagnostics (as given to the parser).
    public var file: String
    /// The text verbatim (the converter embeds it in the `.mbm`).
    public var text: String
    public var version: Int
    public var rules: [Rule]
    /// Settings for weights no rule matches; nil means they stay float32.
    public var defaultSettings: Settings?
    /// Where `default:` was written, for reports.
    public var defaultPosition: SourcePosition?
    public var target: Target?
    /// How a folder of PNG/JPEG calibration images becomes model inputs (`images:`), as written;
    /// the converter turns it into its preprocessing.
    public var images: Images?

    /// `images: {...}`: resize, center crop, channel order, scale, mean/std, layout.
    public struct Images: Sendable, Equatable {
        public enum Resize: Sendable, Equatable {
            case shorterSide(Int)
            case exact(height: Int, width: Int)
        }
        public var resize: Resize?
        public var crop: (height: Int, width: Int)? {
            get { cropSize.map { ($0[0], $0[1]) } }
            set { cropSize = newValue.map { [$0.height, $0.width] } }
        }
        private var cropSize: [Int]?
        /// "rgb", "bgr" or "gray".
        public var channels: String?
        /// 1 or 255.
        public var scale: Double?
        public var mean: [Double]?
        public var std: [Double]?
        /// "nchw" or "nhwc".
        public var layout: String?
        public var position: SourcePosition

        public init(position: SourcePosition) { self.position = position }
    }

    public init(file: String, text: String, version: Int = Policy.supportedVersion, rules: [Rule] = [],
                defaultSettings: Settings? = nil, defaultPosition: SourcePosition? = nil, target: Target? = nil) {
        self.file = file
        self.text = text
        self.version = version
        self.rules = rules
        self.defaultSettings = defaultSettings
        self.defaultPosition = defaultPosition
        self.target = target
    }
}

/// A 1-based line and column (columns count Unicode scalars, as libyaml does).
public struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "\(line):\(column)" }
    public static func < (a: SourcePosition, b: SourcePosition) -> Bool { (a.line, a.column) < (b.line, b.column) }
}

extension Policy {
    public struct Rule: Sendable {
        /// 1-based, in file order.
        public var index: Int
        /// Where the rule's `-` item starts.
        public var position: SourcePosition
        /// Optional `label:`, shown in reports.
        public var label: String?
        public var match: Match
        public var settings: Settings

        public init(index: Int, position: SourcePosition, label: String? = nil, match: Match, settings: Settings) {
            self.index = index
            self.position = position
            self.label = label
            self.match = match
            self.settings = settings
        }

        /// "rule 2 (line 14)" or "rule 'pointwise' (line 14)".
        public var displayName: String {
            if let label { return "rule '\(label)' (line \(position.line))" }
            return "rule \(index) (line \(position.line))"
        }
    }

    /// The conditions of a rule; all given ones must hold. Lists mean "any of".
    public struct Match: Sendable {
        /// Node name patterns (any consumer node's name may match).
        public var nodeNames: [NamePattern] = []
        /// Tensor name patterns. Only this matcher can reach tensors that are not weights.
        public var tensorNames: [NamePattern] = []
        /// Op types, exact and case-sensitive as ONNX spells them ("Conv", "Gemm").
        public var ops: [String] = []
        public var positions: [LayerPosition] = []
        public var minElements: Int?
        public var maxElements: Int?
        public var depthwise: Bool?
        /// Spatial kernel size of a Conv/ConvTranspose weight, e.g. [1, 1] for pointwise.
        public var kernel: [Int64]?

        public init() {}

        public var isEmpty: Bool {
            nodeNames.isEmpty && tensorNames.isEmpty && ops.isEmpty && positions.isEmpty && minElements == nil
                && maxElements == nil && depthwise == nil && kernel == nil
        }
    }

    public enum LayerPosition: String, Sendable, CaseIterable {
        case first, last
    }

    /// What a rule (or `default`) says about storage. Unset fields take the documented defaults.
    public struct Settings: Sendable, Equatable {
        public var storage: Storage
        public var method: MaskMethod?
        /// `method: saliency`: a structured mask chosen by output saliency (needs an output fit
        /// and `granularity: group:N | channel`); `method` then stays unset.
        public var saliency: Bool?
        public var scale: ScaleGranularity?
        public var refit: RefitMode?
        /// Which entries share a bit width (`granularity: element | group:N | channel`).
        public var granularity: MaskGranularity?
        /// `activations: {mix: ...}`: the consuming layer's input is binarized at inference time.
        public var activations: ActivationSpec?
        /// With `--calibrate`: correct this layer's output statistics (default true).
        public var calibrate: Bool?
        /// What the binarized weights are fitted to (`fit: weights | output`).
        public var fit: FitTarget?
        /// `damping: λ`: the output fit's damping as a fraction of mean diag(X_qᵀX_q) (needs `fit: output`).
        public var damping: Double?
        /// How the level scales are stored (`scale_type: float32 | float16`).
        public var scaleType: ElementType?

        public init(storage: Storage, method: MaskMethod? = nil, scale: ScaleGranularity? = nil, refit: RefitMode? = nil,
                    granularity: MaskGranularity? = nil, activations: ActivationSpec? = nil, calibrate: Bool? = nil, fit: FitTarget? = nil) {
            self.fit = fit
            self.storage = storage
            self.method = method
            self.scale = scale
            self.refit = refit
            self.granularity = granularity
            self.activations = activations
            self.calibrate = calibrate
        }
    }

    /// Exactly one per rule: the storage key it states (or, under a `target`, none of them).
    public enum Storage: Sendable, Equatable {
        /// `mix:` or `bits:` (bits: n is the mix {n: 1}).
        case distribution(BitDistribution)
        /// `average: B`: the binarizer searches P with that average.
        case average(Double)
        /// No storage key under a whole-model `target`: the target spreads the bits.
        case target
        /// `keep:`: not binarized.
        case keep(ElementType)
        /// `int:` or `palette:`: a standard quantizer instead of binarization.
        case quantize(QuantizationSpec)
    }

    /// `target: {average_bits: B}`: bits spread over the target-governed weights so that the
    /// model-wide average (over every binarized weight) is B with the least total error.
    public struct Target: Sendable, Equatable {
        public var averageBits: Double
        /// Largest bitwidth the spread may use.
        public var maxBits: Int
        /// What the spread minimizes (`allocate:`).
        public var allocate: TargetAllocation
        public var position: SourcePosition

        public init(averageBits: Double, maxBits: Int = 3, allocate: TargetAllocation = .weightError, position: SourcePosition) {
            self.averageBits = averageBits
            self.maxBits = maxBits
            self.allocate = allocate
            self.position = position
        }
    }
}

/// `target: {allocate: ...}`: what the whole-model spread minimizes.
public enum TargetAllocation: String, Sendable, CaseIterable {
    /// The total squared weight error (the default; needs no data).
    case weightError = "weight-error"
    /// The model's output error, each layer's sensitivity measured on the calibration inputs
    /// (`--calibrate`); without them the conversion stops with an error.
    case sensitivity
}

/// `int:` and `palette:`: the standard quantizers beside binarization (not in the paper; the
/// baselines a binarized layer is compared with, and mixable with it per layer).
public struct QuantizationSpec: Sendable, Equatable {
    /// linear (`int:`, per output channel) or palette (`palette:`, k-means).
    public var scheme: QuantizedTensor.Scheme
    /// Bits per code: 2...8 for `int`, 1...8 for `palette`.
    public var bits: Int
    /// `int: {clip: mse}`: each channel's range shrunk to the one with the least squared error.
    public var clip: ClipMode
    /// `palette: {channels: N}`: N consecutive output channels share a palette; nil: one palette
    /// for the whole tensor.
    public var channels: Int?

    public init(scheme: QuantizedTensor.Scheme, bits: Int, clip: ClipMode = .none, channels: Int? = nil) {
        self.scheme = scheme
        self.bits = bits
        self.clip = clip
        self.channels = channels
    }

    /// The policy's name for it: `int4`, `int4 clip mse`, `palette2`, `palette2 per 32 channels`.
    public var description: String {
        switch scheme {
        case .linear: return "int\(bits)" + (clip == .mse ? " clip mse" : "")
        case .palette: return "palette\(bits)" + (channels.map { " per \($0) channel\($0 == 1 ? "" : "s")" } ?? "")
        }
    }
}

/// `int: {clip: ...}`: how each channel's range is chosen.
public enum ClipMode: String, Sendable, CaseIterable {
    /// [min, max] of the channel (widened to include 0).
    case none
    /// The shrunk range with the least squared error (a grid search).
    case mse
}

/// `refit:` what happens to the level scales (and signs) after residual binarization chose them.
/// `false` is HBB.md exactly; the others are extras (not in the paper), opt-in by name.
public enum RefitMode: String, Sendable, CaseIterable, ExpressibleByBooleanLiteral {
    /// HBB.md: mean |residual| scales, greedy signs.
    case off = "false"
    /// `refit: true`: least-squares scales for the chosen signs and mask.
    case leastSquares = "true"
    /// `refit: alternating`: least-squares scales and nearest sign patterns, alternated
    /// (MBBinarize's AlternatingRefit); every entry keeps its bit width.
    case alternating

    public init(booleanLiteral value: Bool) { self = value ? .leastSquares : .off }
}

/// `fit:` what a binarized weight is fitted to. `weights` is HBB.md (plus the `refit:` extras);
/// `output` is output-aware binarization (not in the paper, opt-in by name): the signs and scales
/// that keep the layer's output on calibration inputs closest to the float model's
/// (MBBinarize's OutputFit; needs `--calibrate`).
public enum FitTarget: String, Sendable, CaseIterable {
    case weights
    case output
    /// `output` with each output channel's row divided by its mean |w| before the fit, so one set
    /// of tensor level scales serves channels of very different sizes (BatchNorm folded into the
    /// weights makes them so); the layer's calibration correction, a per-channel gain stored
    /// anyway, gives each channel its size back. Needs the layer calibrated.
    case outputGain = "output-gain"

    /// Whether the weight is fitted to the layer's output (`output`, `output-gain`).
    public var fitsOutput: Bool { self != .weights }
}

extension Policy {
    /// `keep:` values: the element types a weight that is not binarized is stored in (MBCore's
    /// `ElementType`, the one vocabulary for types), under the names the policy file uses.
    public static let keepTypes: [(name: String, type: ElementType)] = [("float32", .float), ("float16", .float16)]

    /// The policy file's name for a `keep:` type ("float32", "float16").
    public static func keepName(_ type: ElementType) -> String {
        keepTypes.first { $0.type == type }?.name ?? type.name
    }
}
