import Foundation
import MBFormat
import MBONNX

/// `mbconvert export-onnx model.mbm out.onnx`.
public enum ExportONNX {
    public static func run(mbm: String, output: String, force: Bool) throws {
        if FileManager.default.fileExists(atPath: output), !force {
            throw ConversionError("\(output): already exists; pass --force to replace it")
        }
        if URL(fileURLWithPath: output).standardizedFileURL.path == URL(fileURLWithPath: mbm).standardizedFileURL.path {
            throw ConversionError("\(output): refusing to overwrite the input file")
        }
        let file = try MBMFile.open(path: mbm)
        // Weights the policy kept as float16 were float32 in the graph: export their exact
        // values as float32 so the ONNX graph's types agree again.
        var halved = Set<String>()
        if case .json(let text)? = file.metadataValue(MetadataKey.layerStatistics),
           let layers = try? Inspect.jsonDecoder().decode([ConversionReport.Layer].self, from: Data(text.utf8)) {
            halved = Set(layers.filter { $0.encoding == "keep float16" && $0.sourceElementType != "float16" }.map(\.name))
        }
        let onnx = ONNXRaising.raise(file.model, producerVersion: MBConvertInfo.version, widening: halved)
        try ONNXWriter().write(onnx, to: output)
    }
}
