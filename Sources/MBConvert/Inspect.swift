import Foundation
import MBCore
import MBONNX

/// `mbconvert inspect`: load a model file and describe it.
public enum Inspect {
    /// Imports the `.onnx` at `path` and summarizes it. Errors are ONNXError values.
    public static func summarizeONNX(path: String) throws -> ModelSummary {
        let model = try ONNXReader().load(path: path)
        let size = (try? FileMapping.fileSize(path: path)) ?? 0
        return ModelSummary(model: model, file: path, fileBytes: size)
    }

    public static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }
}
