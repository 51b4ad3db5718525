import MBCore

/// A value of any ONNX kind the runtime runs: a tensor, a sequence of tensors, or an optional
/// (a value or none). Tensor-only models never see this type: `MBSession.run(_:)` takes and
/// returns tensors; `MBSession.run(values:)` takes and returns `MBValue`s for models whose
/// inputs or outputs are sequences or optionals (`MBModel.inputs[i].nonTensorType` says which).
///
/// Inside a run, sequences and optionals live beside the tensor values, not in them: only the
/// operators that make or read them (SequenceConstruct, SequenceAt, Optional, If, Loop...) see
/// them, so the tensor kernels and their hot path are unchanged.
public indirect enum MBValue: Sendable, CustomStringConvertible {
    case tensor(MBTensor)
    case sequence(MBSequence)
    /// An optional: `.optional(nil)` is the empty one.
    case optional(MBValue?)
    /// A tensor of strings (ONNX `string` element type): only Equal and Identity read them.
    case strings(MBStringTensor)

    /// The tensor, or nil when the value is a sequence or an optional.
    public var tensor: MBTensor? {
        if case .tensor(let t) = self { return t }
        return nil
    }

    /// The sequence, or nil when the value is not one.
    public var sequence: MBSequence? {
        if case .sequence(let s) = self { return s }
        return nil
    }

    public var description: String {
        switch self {
        case .tensor(let t): return t.description
        case .sequence(let s): return s.description
        case .optional(let v): return "optional(\(v?.description ?? "none"))"
        case .strings(let t): return t.description
        }
    }

    /// What kind of value this is, for messages ("a tensor", "a sequence", "an optional").
    var kindName: String {
        switch self {
        case .tensor: return "a tensor"
        case .sequence: return "a sequence"
        case .optional: return "an optional"
        case .strings: return "a string tensor"
        }
    }
}

/// An ONNX sequence: tensors of one element type (as the runtime holds it: float for float16 and
/// double, int32 for 8- and 16-bit integers, int64 for uint32), shapes free to differ.
public struct MBSequence: Sendable, CustomStringConvertible {
    /// nil when the sequence is empty and nothing said its type.
    public var elementType: ElementType?
    public var tensors: [MBTensor]

    /// A sequence of `tensors`; its element type is theirs (they must agree), or `elementType` when empty.
    public init(_ tensors: [MBTensor], elementType: ElementType? = nil) {
        self.tensors = tensors
        self.elementType = tensors.first?.elementType ?? elementType
    }

    public var count: Int { tensors.count }

    public var description: String { "seq<\(elementType?.name ?? "?")>[" + tensors.map(\.description).joined(separator: ", ") + "]" }
}

/// A tensor of byte strings (ONNX `string`; UTF-8 by convention, compared as bytes), row-major.
public struct MBStringTensor: Sendable, Equatable, CustomStringConvertible {
    public var shape: [Int]
    public var values: [[UInt8]]

    public init(shape: [Int], values: [[UInt8]]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) needs \(shape.reduce(1, *)) strings, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    public init(shape: [Int], strings: [String]) { self.init(shape: shape, values: strings.map { Array($0.utf8) }) }

    public var description: String { "string\(shape)" }
}
