import Foundation
import MBCore
import MBFormat
import MBRuntime
import Testing
import TestSupport

/// Inputs the `.mbm` fuzz target (Fuzz/Sources/FuzzMBM) once crashed or hung on, replayed through
/// the same pipeline and limits (parse with CRCs recomputed, load, one run on constant inputs):
/// each must end in a value or a clean error, never a trap.
@Suite struct MBMFuzzRegressionTests {
    static let regressions = RegressionInputs(beside: #filePath, subfolder: "mbm")
    static var inputs: [String] { regressions.names }

    @Test func thereAreRegressionInputs() {
        #expect(!Self.inputs.isEmpty, "no inputs in \(Self.regressions.folder.path)")
    }

    @Test(arguments: inputs)
    func replays(_ name: String) throws {
        let bytes = try Self.regressions.bytes(name)
        // Regression files are stored with their CRCs already valid.
        let file: MBMFile
        do {
            file = try MBMFile.parse(bytes, name: name)
        } catch {
            #expect(error.file == name)
            return
        }
        let model: MBModel
        do {
            model = try MBModel(ir: file.model, options: .init(maxTensorBytes: 1 << 24))
        } catch {
            #expect(!error.message.isEmpty)
            return
        }
        var inputs: [String: MBTensor] = [:]
        for info in model.inputs {
            let shape = (info.shape ?? []).map { d -> Int in if case .fixed(let n) = d { return Int(n) } else { return 1 } }
            let count = shape.reduce(1, *)
            switch info.elementType ?? .float {
            case .int64: inputs[info.name] = MBTensor(shape: shape, int64s: [Int64](repeating: 1, count: count))
            case .int32: inputs[info.name] = MBTensor(shape: shape, int32s: [Int32](repeating: 1, count: count))
            case .bool: inputs[info.name] = MBTensor(shape: shape, bools: [Bool](repeating: true, count: count))
            default: inputs[info.name] = MBTensor(shape: shape, floats: [Float](repeating: 0.5, count: count))
            }
        }
        do {
            _ = try model.makeSession(.init(maxTensorBytes: 1 << 24)).run(inputs)
        } catch {
            #expect(!error.message.isEmpty)
        }
    }
}
