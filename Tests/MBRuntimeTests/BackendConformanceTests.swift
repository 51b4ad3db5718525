import Foundation
import MBConvert
import MBCore
import MBKernels
import MBRuntime
import TestSupport
import XCTest

/// The ONNX project's backend cases in ../shared/onnx-backend: every case whose operators the
/// runtime supports must match `test_data_set_0/output_N.pb` (fast kernels and reference
/// kernels); the rest are listed with the missing operator.
final class BackendConformanceTests: XCTestCase {
    func testEverySupportedBackendCasePasses() throws {
        guard let root = SharedFixtures.onnxBackend else { throw XCTSkip(SharedFixtures.skipMessage("ONNX backend conformance")) }
        let fm = FileManager.default
        var cases: [URL] = []
        for group in try fm.contentsOfDirectory(atPath: root.path).sorted() {
            let g = root.appendingPathComponent(group)
            for c in (try? fm.contentsOfDirectory(atPath: g.path).sorted()) ?? [] { cases.append(g.appendingPathComponent(c)) }
        }
        var passed: [String] = [], failed: [String] = [], unsupported: [String] = []
        for dir in cases {
            let name = dir.lastPathComponent
            let ir: IRModel
            do {
                ir = try ModelLoading.loadONNXAsIR(path: dir.appendingPathComponent("model.onnx").path)
            } catch {
                unsupported.append("\(name): import: \(error)")
                continue
            }
            let missing = MBModel.unsupportedOperators(in: ir)
            if !missing.isEmpty {
                unsupported.append("\(name): " + missing.map { $0.domain.isEmpty ? $0.opType : "\($0.domain):\($0.opType)" }.joined(separator: ", "))
                continue
            }
            let loaded = Result { () throws(MBRuntimeError) -> MBModel in try MBModel(ir: ir) }
            if case .failure(let e) = loaded, e.kind == .unsupportedOperator {
                unsupported.append("\(name): \(e)")
                continue
            }
            let model = try loaded.get()
            let data = dir.appendingPathComponent("test_data_set_0")
            var feeds: [String: MBTensor] = [:]
            for (k, info) in model.inputs.enumerated() {
                let t = try ModelLoading.loadTensorProto(path: data.appendingPathComponent("input_\(k).pb").path)
                feeds[info.name] = try MBTensor(irTensor: t)
            }
            var problems: [String] = []
            for variant in KernelVariant.allCases {
                do {
                    let out = try model.makeSession(.init(threads: 2, kernels: variant)).run(feeds)
                    for (k, info) in model.outputs.enumerated() {
                        let expected = try MBTensor(irTensor: ModelLoading.loadTensorProto(path: data.appendingPathComponent("output_\(k).pb").path))
                        guard let got = out[info.name] else { problems.append("\(variant): no output '\(info.name)'"); continue }
                        let d = compare(got, expected)
                        if d.shapeMismatch != nil || d.outside > 0 { problems.append("\(variant) output '\(info.name)': \(d)") }
                    }
                } catch {
                    problems.append("\(variant): \(error)")
                }
            }
            if problems.isEmpty { passed.append(name) } else { failed.append("\(name): " + problems.joined(separator: "; ")) }
        }
        print("ONNX backend: \(passed.count) passed, \(failed.count) failed, \(unsupported.count) unsupported of \(cases.count)")
        for f in failed { print("  FAILED \(f)") }
        for u in unsupported { print("  unsupported \(u)") }
        XCTAssertTrue(failed.isEmpty, "failed backend cases:\n" + failed.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(passed.count, 100)
    }
}
