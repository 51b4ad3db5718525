import Foundation
import MBConvert
import MBCore
import MBKernels
import MBRuntime
import TestSupport
import XCTest

/// The ONNX project's backend cases in ../shared/onnx-backend and the node cases of the pinned
/// `onnx` package (Scripts/requirements.txt): exact counts. Every case must pass (fast kernels and
/// reference kernels, against `test_data_set_0/output_N.pb`) unless it is on the suite's explicit
/// list of unsupported cases (`Tests/Conformance/*.unsupported.txt`, one case per line with the
/// reason). An import error, a missing output or a run-time refusal of a case that is not listed
/// is a failure; a listed case that now passes is a failure too, whose message names it, so the
/// list (and with it the pass count) is updated in the same commit that makes it pass.
final class BackendConformanceTests: XCTestCase {
    func testEverySupportedBackendCasePasses() throws {
        let root = try Prerequisites.xcBackend("ONNX backend conformance")
        let report = try Self.run(cases: Self.cases(under: root))
        try Self.check(report, against: "onnx-backend.unsupported.txt", suite: "ONNX backend")
    }

    /// The node cases of the pinned `onnx` package, written out by `Scripts/fixtures/onnx_node_cases.py`
    /// (Scripts/test.sh does this and sets MBCONVERT_ONNX_NODE_CASES).
    func testEverySupportedONNXNodeCasePasses() throws {
        guard let path = ProcessInfo.processInfo.environment["MBCONVERT_ONNX_NODE_CASES"], !path.isEmpty else {
            throw Prerequisites.skipOrFail(.init(description: "the ONNX node conformance cases need MBCONVERT_ONNX_NODE_CASES (Scripts/test.sh writes them with the pinned onnx and sets it)"))
        }
        let report = try Self.run(cases: Self.cases(in: URL(fileURLWithPath: path)))
        try Self.check(report, against: "onnx-node.unsupported.txt", suite: "ONNX node")
    }

    /// The listed unsupported cases: `name  # reason` per line; blank lines and `#` lines are comments.
    static func expectedUnsupported(_ file: String) throws -> [String: String] {
        let url = SharedFixtures.repositoryRoot.appendingPathComponent("Tests/Conformance/\(file)")
        var out: [String: String] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            let parts = t.split(separator: "#", maxSplits: 1)
            out[parts[0].trimmingCharacters(in: .whitespaces)] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        }
        return out
    }

    /// Exact accounting against the list; the message names every case whose state changed.
    static func check(_ report: Report, against file: String, suite: String) throws {
        let listed = try expectedUnsupported(file)
        let unsupportedNames = Set(report.unsupported.map(\.name))
        let newlyPassing = report.passed.filter { listed[$0] != nil }
        let newlyUnsupported = report.unsupported.filter { listed[$0.name] == nil }
        let vanished = listed.keys.filter { name in !unsupportedNames.contains(name) && !report.passed.contains(name) && !report.failed.contains { $0.hasPrefix(name + ": ") } }.sorted()
        XCTAssertTrue(report.failed.isEmpty, "\(suite): \(report.failed.count) failed cases:\n" + report.failed.joined(separator: "\n"))
        XCTAssertTrue(newlyUnsupported.isEmpty, "\(suite): cases not on Tests/Conformance/\(file) that did not run (a regression, or list them with the reason):\n"
                      + newlyUnsupported.map { "\($0.name): \($0.reason)" }.joined(separator: "\n"))
        XCTAssertTrue(newlyPassing.isEmpty, "\(suite): listed cases that now pass; remove them from Tests/Conformance/\(file) (\(report.passed.count) pass now):\n"
                      + newlyPassing.joined(separator: "\n"))
        XCTAssertTrue(vanished.isEmpty, "\(suite): listed cases that no longer exist; remove them from Tests/Conformance/\(file):\n" + vanished.joined(separator: "\n"))
        let expectedPassed = report.total - listed.count + vanished.count
        XCTAssertEqual(report.passed.count, expectedPassed, "\(suite): exact pass count (\(report.total) cases, \(listed.count) listed unsupported)")
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

    struct Report {
        var passed: [String] = [], failed: [String] = [], unsupported: [(name: String, reason: String)] = []
        var total = 0
    }

    /// nil when `got` matches `expected` (same kinds, sequences of equal length, tensors within
    /// tolerance); otherwise what differs.
    static func compareValues(_ got: MBValue, _ expected: MBValue, rtol: Float) -> String? {
        switch (got, expected) {
        case (.tensor(let g), .tensor(let e)):
            let d = compare(g, e, rtol: rtol)
            return d.shapeMismatch != nil || d.outside > 0 ? "\(d)" : nil
        case (.sequence(let g), .sequence(let e)):
            guard g.count == e.count else { return "sequence of \(g.count) tensors, expected \(e.count)" }
            for (k, (x, y)) in zip(g.tensors, e.tensors).enumerated() {
                if let p = compareValues(.tensor(x), .tensor(y), rtol: rtol) { return "element \(k): \(p)" }
            }
            return nil
        case (.optional(let g), .optional(let e)):
            switch (g, e) {
            case (nil, nil): return nil
            case (let g?, let e?): return compareValues(g, e, rtol: rtol)
            default: return "optional \(got), expected \(expected)"
            }
        case (.strings(let g), .strings(let e)):
            return g == e ? nil : "strings \(g.values.map { String(decoding: $0, as: UTF8.self) }), expected \(e.values.map { String(decoding: $0, as: UTF8.self) })"
        default: return "\(got), expected \(expected)"
        }
    }

    static func run(cases: [URL]) throws -> Report {
        var passed: [String] = [], failed: [String] = [], unsupported: [(name: String, reason: String)] = []
        for dir in cases {
            let name = dir.lastPathComponent
            let ir: IRModel
            do {
                ir = try ModelLoading.loadONNXAsIR(path: dir.appendingPathComponent("model.onnx").path)
            } catch {
                unsupported.append((name, "import: \(error)"))
                continue
            }
            let missing = MBModel.unsupportedOperators(in: ir)
            if !missing.isEmpty {
                unsupported.append((name, "operators: " + missing.map { $0.domain.isEmpty ? $0.opType : "\($0.domain):\($0.opType)" }.joined(separator: ", ")))
                continue
            }
            let loaded = Result { () throws(MBRuntimeError) -> MBModel in try MBModel(ir: ir) }
            if case .failure(let e) = loaded, e.kind == .unsupportedOperator {
                unsupported.append((name, "\(e)"))
                continue
            }
            let model: MBModel
            var feeds: [String: MBValue] = [:]
            let data = dir.appendingPathComponent("test_data_set_0")
            do {
                model = try loaded.get()
                for (k, info) in model.inputs.enumerated() {
                    let file = data.appendingPathComponent("input_\(k).pb")
                    // Map inputs have no file (Scripts/fixtures/onnx_node_cases.py writes tensors,
                    // sequences and optionals).
                    guard FileManager.default.fileExists(atPath: file.path) else { throw NonTensorInput(name: info.name) }
                    feeds[info.name] = try ModelLoading.loadValue(path: file.path, type: info.nonTensorType)
                }
            } catch let e as NonTensorInput {
                unsupported.append((name, "input '\(e.name)' is a map or has no data file"))
                continue
            } catch {
                failed.append("\(name): load: \(error)")
                continue
            }
            var problems: [String] = []
            var runUnsupported: String?
            for variant in KernelVariant.allCases where runUnsupported == nil {
                do {
                    let out = try model.makeSession(.init(threads: 2, kernels: variant)).run(values: feeds)
                    for (k, info) in model.outputs.enumerated() {
                        let expected = try ModelLoading.loadValue(path: data.appendingPathComponent("output_\(k).pb").path, type: info.nonTensorType)
                        guard let got = out[info.name] else { problems.append("\(variant): no output '\(info.name)'"); continue }
                        let declared = ir.graph.outputs.first { $0.name == info.name }?.elementType
                        let rtol = declared == .float16 ? Tolerance.backendFloat16Relative
                            : declared == .bfloat16 ? Tolerance.backendBFloat16Relative : Tolerance.backendRelative
                        if let problem = compareValues(got, expected, rtol: rtol) { problems.append("\(variant) output '\(info.name)': \(problem)") }
                    }
                } catch let e as MBRuntimeError where e.kind == .unsupportedOperator {
                    runUnsupported = "\(e)"  // an operator form the runtime refuses only once it sees the inputs
                } catch {
                    problems.append("\(variant): \(error)")
                }
            }
            if let runUnsupported { unsupported.append((name, runUnsupported)); continue }
            if problems.isEmpty { passed.append(name) } else { failed.append("\(name): " + problems.joined(separator: "; ")) }
        }
        print("ONNX backend: \(passed.count) passed, \(failed.count) failed, \(unsupported.count) unsupported of \(cases.count)")
        for f in failed { print("  FAILED \(f)") }
        for u in unsupported { print("  unsupported \(u.name)  # \(u.reason)") }
        return Report(passed: passed, failed: failed, unsupported: unsupported, total: cases.count)
    }
}
