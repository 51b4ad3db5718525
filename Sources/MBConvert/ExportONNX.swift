import Foundation
import MBFormat
import MBONNX

/// `mbconvert export-onnx model.mbm out.onnx`.
public enum ExportONNX {
    public static func run(mbm: String, output: String, force: Bool) throws {
        if FileManager.default.fileExists(atPath: output), !force {
            throw Conversion.Failure("\(output): already exists; pass --force to replace it")
        }
        if URL(fileURLWithPath: output).standardizedFileURL.path == URL(fileURLWithPath: mbm).standardizedFileURL.path {
            throw Conversion.Failure("\(output): refusing to overwrite the input file")
        }
        let file = try MBMFile.open(path: mbm)
        let onnx = ONNXRaising.raise(file.model, producerVersion: MBConvertInfo.version)
        try ONNXWriter().write(onnx, to: output)
    }
}
