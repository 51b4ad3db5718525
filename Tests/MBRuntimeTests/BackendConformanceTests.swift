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
        let report = try Self.run(cases: Self.cases(under: root))
        XCTAssertTrue(report.failed.isEmpty, "failed backend cases:\n" + report.failed.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(report.passed.count, 100)
    }

    /// The node cases of the installed `onnx` package, written out by `Scripts/fixtures/onnx_node_cases.py`
    /// (Scripts/test.sh does this and sets MBCONVERT_ONNX_NODE_CASES): every case whose operators
    /// the runtime supports must pass; unsupported ones are listed.
    func testEverySupportedONNXNodeCasePasses() throws {
        guard let path = ProcessInfo.processInfo.environment["MBCONVERT_ONNX_NODE_CASES"], !path.isEmpty else {
            throw XCTSkip("SKIPPING the ONNX node conformance cases: MBCONVERT_ONNX_NODE_CASES is not set (Scripts/test.sh sets it when Python's onnx is installed)")
        }
        let report = try Self.run(cases: Self.cases(in: URL(fileURLWithPath: path)))
        XCTAssertTrue(report.failed.isEmpty, "failed ONNX node cases:\n" + report.failed.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(report.passed.count, 500)
    }

    /// Case folders (each with model.onnx) one level below `root`'s groups.
    static func cases(under root: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(atPath: root.path).sorted().flatMap { cases(in: root.appendingPathComponent($0)) }
    }

    /// Case folders directly inside `folder`.
    static func cases(in folder: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()) ?? []).map { folder.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("model.onnx").path) }
    }

    struct NonTensorInput: Error { var name: String }

    struct Report { var passed: [String] = [], failed: [String] = [], unsupported: [String] = [] }

    static func run(cases: [URL]) throws -> Report {
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
            let model: MBModel
            var feeds: [String: MBTensor] = [:]
            let data = dir.appendingPathComponent("test_data_set_0")
            do {
                model = try loaded.get()
                for (k, info) in model.inputs.enumerated() {
                    let file = data.appendingPathComponent("input_\(k).pb")
                    // Sequence, map and optional inputs have no TensorProto file.
                    guard FileManager.default.fileExists(atPath: file.path) else { throw NonTensorInput(name: info.name) }
                    let t = try ModelLoading.loadTensorProto(path: file.path)
                    feeds[info.name] = try MBTensor(irTensor: t)
                }
            } catch let e as NonTensorInput {
                unsupported.append("\(name): input '\(e.name)' is not a tensor")
                continue
            } catch {
                failed.append("\(name): load: \(error)")
                continue
            }
            var problems: [String] = []
            var runUnsupported: String?
            for variant in KernelVariant.allCases where runUnsupported == nil {
                do {
                    let out = try model.makeSession(.init(threads: 2, kernels: variant)).run(feeds)
                    for (k, info) in model.outputs.enumerated() {
                        let expected = try MBTensor(irTensor: ModelLoading.loadTensorProto(path: data.appendingPathComponent("output_\(k).pb").path))
                        guard let got = out[info.name] else { problems.append("\(variant): no output '\(info.name)'"); continue }
                        let declared = ir.graph.outputs.first { $0.name == info.name }?.elementType
                        let rtol = declared == .float16 ? Tolerance.backendFloat16Relative
                            : declared == .bfloat16 ? Tolerance.backendBFloat16Relative : Tolerance.backendRelative
                        let d = compare(got, expected, rtol: rtol)
                        if d.shapeMismatch != nil || d.outside > 0 { problems.append("\(variant) output '\(info.name)': \(d)") }
                    }
                } catch let e as MBRuntimeError where e.kind == .unsupportedOperator {
                    runUnsupported = "\(e)"  // an operator form the runtime refuses only once it sees the inputs
                } catch {
                    problems.append("\(variant): \(error)")
                }
            }
            if let runUnsupported { unsupported.append("\(name): \(runUnsupported)"); continue }
            if problems.isEmpty { passed.append(name) } else { failed.append("\(name): " + problems.joined(separator: "; ")) }
        }
        print("ONNX backend: \(passed.count) passed, \(failed.count) failed, \(unsupported.count) unsupported of \(cases.count)")
        for f in failed { print("  FAILED \(f)") }
        for u in unsupported { print("  unsupported \(u)") }
        return Report(passed: passed, failed: failed, unsupported: unsupported)
    }
}
