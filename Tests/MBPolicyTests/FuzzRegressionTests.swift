import Foundation
import MBPolicy
import Testing

/// Inputs the policy fuzz target (Fuzz/Sources/FuzzPolicy) once crashed on: each must parse to
/// a policy or to diagnostics naming the file, never trap.
@Suite struct PolicyFuzzRegressionTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Regressions")

    static var inputs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    @Test func thereAreRegressionInputs() {
        #expect(!Self.inputs.isEmpty, "no inputs in \(Self.folder.path)")
    }

    @Test(arguments: inputs)
    func replays(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(name)))
        let result = Policy.parse(bytes: bytes, file: name)
        #expect((result.policy == nil) == !result.errors.isEmpty)
        #expect(result.diagnostics.allSatisfy { $0.description.hasPrefix("\(name):") })
    }

}
