import Foundation
import MBConvert
import MBCore
import MBONNX
import Testing
import TestSupport

/// Inputs the ONNX fuzz target (Fuzz/Sources/FuzzONNX) once crashed, leaked or hung on, replayed
/// through the same pipeline with the same limits: each must end in a value or an error that
/// names the file, never a trap.
@Suite struct FuzzRegressionTests {
    static let regressions = RegressionInputs(beside: #filePath, subfolder: "onnx")
    static var inputs: [String] { regressions.names }

    @Test func thereAreRegressionInputs() {
        #expect(!Self.inputs.isEmpty, "no inputs in \(Self.regressions.folder.path)")
    }

    @Test(arguments: inputs)
    func replays(_ name: String) throws {
        let bytes = try Self.regressions.bytes(name)
        var options = ONNXReader.Options()
        options.maxTensorElements = 1 << 22
        let limits = ConstantFolding.Limits(maxBytes: 1 << 24)
        do {
            let model = try bytes.withUnsafeBytes { raw in
                try Result { () throws(ONNXError) -> ONNXModel in try ONNXReader(options: options).decode(raw, file: name) }.get()
            }
            let discovery = try WeightDiscovery(onnx: model, file: name, limits: limits)
            _ = try ConstantFolding.fold(discovery.graph, limits: limits)
        } catch let error as ONNXError {
            #expect(error.file == name)
        } catch let error as ConversionError {
            #expect(!error.message.isEmpty && (error.node != nil || error.message.hasPrefix(name)), "\(error)")
        }
    }
}
