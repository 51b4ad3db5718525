import Foundation
import MBConvert
import MBCore
import MBONNX
import Testing

/// Inputs the ONNX fuzz target (Fuzz/Sources/FuzzONNX) once crashed, leaked or hung on, replayed
/// through the same pipeline with the same limits: each must end in a value or an error that
/// names the file, never a trap.
@Suite struct FuzzRegressionTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Regressions/onnx")

    static var inputs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    @Test func thereAreRegressionInputs() {
        #expect(!Self.inputs.isEmpty, "no inputs in \(Self.folder.path)")
    }

    @Test(arguments: inputs)
    func replays(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(name)))
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
        } catch let error as ONNXLowering.Failure {
            #expect(error.file == name)
        } catch let error as ConstantFolding.Failure {
            #expect(!error.node.isEmpty && !error.message.isEmpty)
        }
    }
}
