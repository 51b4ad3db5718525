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
        String(decoding: try jsonEncoder(pretty: true).encode(value), as: UTF8.self) + "\n"
    }

    /// The one JSON style of every report: sorted keys, plain slashes, and non-finite numbers
    /// (an exact layer's infinite SQNR) as the strings "inf", "-inf" and "nan".
    public static func jsonEncoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }
}
