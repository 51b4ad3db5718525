import MBCore
import MBONNX
import MBRuntime

/// Loading models by file type, for commands that accept either format.
public enum ModelLoading {
    /// The model at `path` ready to run: an `.mbm` (told apart by its magic) or, anything else,
    /// an `.onnx` file imported and lowered to the IR the runtime executes.
    public static func load(path: String, weights: MBModel.Options.Weights = .auto, optimize: Bool = true,
                            maxWeightBytes: Int? = nil, convTables: MBModel.Options.ConvTables = .float) throws -> MBModel {
        let options = MBModel.Options(weights: weights, optimize: optimize, maxWeightBytes: maxWeightBytes, convTables: convTables)
        if Inspect.isMBM(path: path) {
            return try MBModel(contentsOfFile: path, options: options)
        }
        return try MBModel(ir: loadONNXAsIR(path: path), options: options)
    }

    /// Imports an `.onnx` file and lowers it to the IR the runtime executes.
    public static func loadONNXAsIR(path: String) throws -> IRModel {
        let model = try ONNXReader().load(path: path)
        return try ONNXLowering(file: path).lower(model)
    }

    /// A serialized ONNX TensorProto (backend test data) as an IR tensor.
    public static func loadTensorProto(path: String) throws -> IRTensor {
        let t = try ONNXReader().loadTensor(path: path)
        return try ONNXLowering(file: path).tensor(t, place: "tensor '\(t.name ?? "")'")
    }

    /// A serialized TensorProto, SequenceProto or OptionalProto (backend test data) as a runtime
    /// value; `type` (the graph's declaration of the value) says which message the file holds.
    public static func loadValue(path: String, type: IRType?) throws -> MBValue {
        let kind: ONNXReader.ValueKind = switch type {
        case .sequence?: .sequence
        case .optional?: .optional
        default: .tensor
        }
        let lowering = ONNXLowering(file: path)
        func convert(_ v: ONNXValue) throws -> MBValue {
            switch v {
            case .tensor(let t):
                let ir = try lowering.tensor(t, place: "tensor '\(t.name ?? "")'")
                if case .strings(let values) = ir.storage { return .strings(MBStringTensor(shape: ir.shape, values: values)) }
                return .tensor(try MBTensor(irTensor: ir))
            case .sequence(_, let items):
                let values = try items.map(convert)
                let tensors = try values.map { v -> MBTensor in
                    guard let t = v.tensor else { throw MBRuntimeError(.unsupportedOperator, "\(path): sequences of \(v) are not supported") }
                    return t
                }
                return .sequence(MBSequence(tensors))
            case .optional(_, let inner): return .optional(try inner.map(convert))
            }
        }
        return try convert(ONNXReader().loadValue(path: path, kind: kind))
    }
}
