import Foundation
@testable import MBConvert
import MBFormat
import TestSupport
import Testing

/// The streamed conversion hands each tensor to its sink in file order with the tensor's own
/// number, whichever worker finished it (the sink of `verify` puts stand-ins at that number).
@Suite struct StreamingConversionTests {
    @Test func theSinkGetsEveryTensorInOrderWithItsOwnNumber() throws {
        let root = SharedFixtures.repositoryRoot
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policy = root.appendingPathComponent("Examples/policies/alexnet-paper.txt").path
        let prepared = try Conversion.prepare(model: model, policyBytes: Array(try Data(contentsOf: URL(fileURLWithPath: policy))),
                                              policyFile: policy, strict: false)
        let tensors = prepared.graph.constants
        // Repeated with two workers and a roomy budget, so that tensors finish out of order.
        for round in 0..<20 {
            let seen = Seen()
            _ = try Conversion.stream(prepared, tensors: tensors, budget: 1 << 30, threads: 2, progress: nil) { k, stored, outcome in
                seen.add(k, stored.name, outcome?.name)
            }
            let calls = seen.calls
            #expect(calls.map(\.number) == Array(tensors.indices), "round \(round)")
            for call in calls {
                #expect(call.name == tensors[call.number].name, "round \(round): number \(call.number) got '\(call.name)'")
                if let planned = call.planned { #expect(planned == call.name, "round \(round)") }
            }
        }
    }
}

private final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [(number: Int, name: String, planned: String?)] = []
    func add(_ k: Int, _ name: String, _ planned: String?) {
        lock.lock()
        list.append((k, name, planned))
        lock.unlock()
    }
    var calls: [(number: Int, name: String, planned: String?)] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }
}
