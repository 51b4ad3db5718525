import Foundation
import MBPolicy
import Testing
import TestSupport

/// Inputs the policy fuzz target (Fuzz/Sources/FuzzPolicy) once crashed on: each must parse to
/// a policy or to diagnostics naming the file, never trap.
@Suite struct PolicyFuzzRegressionTests {
    static let regressions = RegressionInputs(beside: #filePath)
    static var inputs: [String] { regressions.names }

    @Test func thereAreRegressionInputs() {
        #expect(!Self.inputs.isEmpty, "no inputs in \(Self.regressions.folder.path)")
    }

    @Test(arguments: inputs)
    func replays(_ name: String) throws {
        let bytes = try Self.regressions.bytes(name)
        let result = Policy.parse(bytes: bytes, file: name)
        #expect((result.policy == nil) == !result.errors.isEmpty)
        #expect(result.diagnostics.allSatisfy { $0.description.hasPrefix("\(name):") })
    }
}
