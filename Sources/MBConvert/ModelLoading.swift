import MBCore
import MBONNX

/// Loading models by file type, for commands that accept either format.
public enum ModelLoading {
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
}
