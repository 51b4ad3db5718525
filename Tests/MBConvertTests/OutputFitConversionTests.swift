import Foundation
import MBConvert
import MBCore
import MBFormat
import MBRuntime
import TestSupport
import Testing

/// `fit: output` through a conversion: each layer's output error on the calibration rows falls,
/// verify accepts the file, and bad calibration inputs stop the conversion with nothing written.
@Suite struct OutputFitConversionTests {
    let root = SharedFixtures.repositoryRoot
    var model: String { root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path }

    func workspace() throws -> URL { try scratchDirectory("outfit") }

    func inputs(_ shape: [Int], seed: UInt64, in dir: URL, poison: Float? = nil) throws -> String {
        var rng = SeededGenerator(seed: seed)
        var values = (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal()) }
        if let poison { values[values.count / 2] = poison }
        let path = dir.appendingPathComponent("calib-\(seed)-\(shape.map(String.init).joined(separator: "x")).npy").path
        try NPY.write(NPYArray(floats: values, shape: shape), to: path)
        return path
    }

    /// Converts tiny_cnn with `policyText` on 32 seeded calibration inputs: the report, the file
    /// and the report rows of the binarized layers (at least one).
    func convert(_ policyText: String, in dir: URL) throws -> (ConversionReport, String, [ConversionReport.Layer]) {
        let policy = try writeText(policyText, "fit.txt", in: dir)
        let out = dir.appendingPathComponent("fit.mbm").path
        var options = Conversion.Options()
        options.calibrate = try inputs([32, 3, 32, 32], seed: 2, in: dir)
        let report = try Conversion.run(model: model, policy: policy, output: out, options: options)
        let binarized = report.layers.filter { $0.encoding == "binarized" }
        #expect(!binarized.isEmpty)
        return (report, out, binarized)
    }

    static let policy = """
        version: 1
        default:
          scale: channel
          fit: output

        """

    @Test(arguments: ["", "  refit: alternating\n  granularity: group:4\n", "  calibrate: false\n", "  bits: 2\n  scale_type: float16\n"])
    func fitsEveryLayerAndVerifies(extra: String) throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let storage = extra.contains("bits:") ? "" : "  mix: {1: 0.6, 2: 0.3, 3: 0.1}\n"
        let (report, out, binarized) = try convert(Self.policy + storage + extra, in: dir)
        for layer in binarized {
            let after = try #require(layer.outputError, "\(layer.name): no output error reported")
            let before = try #require(layer.outputErrorWeightFit)
            #expect(after.isFinite && after <= before + 1e-9, "\(layer.name): output error \(before) -> \(after)")
            #expect(layer.method?.hasSuffix("+output-fit") == true, "\(layer.name): method \(layer.method ?? "-")")
            print("fit: output [\(extra.trimmingCharacters(in: .whitespacesAndNewlines))] \(layer.name): relative output error \(before) -> \(after)")
        }
        #expect((report.calibration?.isEmpty ?? true) == extra.contains("calibrate: false"))
        if extra.contains("float16") {
            let file = try MBMFile.open(path: out)
            for layer in binarized {
                guard case .binarized(let p)? = file.model.graph.constants.first(where: { $0.name == layer.name })?.storage else { continue }
                #expect(p.halfScales && p.levels.allSatisfy { $0.scales.allSatisfy { Float(float16Bits: $0.float16Bits) == $0 } }, "\(layer.name)")
            }
        }
        let check = try Verify.run(onnx: model, mbm: out, options: Verify.Options())
        #expect(check.passed, "\(check.failures)")
        #expect(check.weights.filter { $0.detail?.hasPrefix("fitted to calibration data") == true }.count == binarized.count)
    }

    /// `method: saliency`: each structured mask holds Middle-Out's number of groups per width
    /// (per output channel with channel scales), differs from Middle-Out's somewhere, and the
    /// file verifies; the report names the method.
    @Test(arguments: ["  scale: channel\n  granularity: group:4\n", "  scale: tensor\n  granularity: channel\n  refit: alternating\n"])
    func saliencyMasksKeepTheCounts(extra: String) throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = "version: 1\ndefault:\n  mix: {1: 0.6, 2: 0.3, 3: 0.1}\n  fit: output\n" + extra
        let (_, middleOutFile, middleOut) = try convert(base, in: dir)
        let second = dir.appendingPathComponent("saliency")
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true)
        let (_, out, saliency) = try convert(base + "  method: saliency\n", in: second)
        let a = try MBMFile.open(path: middleOutFile), b = try MBMFile.open(path: out)
        var differs = false
        for (m, s) in zip(middleOut, saliency) {
            #expect(s.method?.hasPrefix("saliency") == true && s.method?.hasSuffix("+output-fit") == true, "\(s.name): \(s.method ?? "-")")
            #expect(m.realizedMix == s.realizedMix, "\(s.name): \(m.realizedMix ?? []) vs \(s.realizedMix ?? [])")
            guard case .binarized(let pm)? = a.model.graph.constants.first(where: { $0.name == m.name })?.storage,
                  case .binarized(let ps)? = b.model.graph.constants.first(where: { $0.name == s.name })?.storage else { continue }
            // With channel scales every output channel of a Conv (axis 0) holds P on its own.
            if extra.contains("channel\n  granularity: group"), pm.shape.count == 4 {
                let rows = pm.shape[0], per = pm.count / rows
                for r in 0..<rows {
                    let hm = Dictionary(pm.mask[(r * per)..<((r + 1) * per)].map { ($0, 1) }, uniquingKeysWith: +)
                    let hs = Dictionary(ps.mask[(r * per)..<((r + 1) * per)].map { ($0, 1) }, uniquingKeysWith: +)
                    #expect(hm == hs, "\(s.name) row \(r): \(hm) vs \(hs)")
                }
            }
            if pm.mask != ps.mask { differs = true }
            print("saliency [\(extra.replacingOccurrences(of: "\n", with: " "))] \(s.name): output error middle-out \(m.outputError ?? -1) saliency \(s.outputError ?? -1)")
        }
        #expect(differs)
        let check = try Verify.run(onnx: model, mbm: out, options: Verify.Options())
        #expect(check.passed, "\(check.failures)")
    }

    /// `damping:` reaches the fit: the first layer reads the model's input, the same X_q in both
    /// conversions, so its λ is exactly 50 times the default's.
    @Test func dampingKeyScalesLambda() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = "version: 1\ndefault:\n  bits: 2\n  fit: output\n"
        let (_, _, plain) = try convert(text, in: dir)
        let second = dir.appendingPathComponent("damped")
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true)
        let (_, _, damped) = try convert(text + "  damping: 0.5\n", in: second)
        let ratios = zip(plain, damped).compactMap { a, b in a.damping.flatMap { la in b.damping.map { $0 / la } } }
        #expect(ratios.count == plain.count && ratios.contains { abs($0 - 50) <= 1e-9 * 50 }, "λ ratios \(ratios)")
    }

    /// `fit: output-gain`: rows are fitted and stored at one size (each over its mean |w|), the
    /// calibration correction gives the sizes back, and verify accepts the file; a layer that is
    /// not calibrated falls back to `fit: output` with a warning.
    @Test(arguments: [false, true])
    func outputGainStoresRowsOfOneSize(uncalibrated: Bool) throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = "version: 1\ndefault:\n  bits: 2\n  scale: tensor\n  fit: output-gain\n" + (uncalibrated ? "  calibrate: false\n" : "")
        let (report, out, binarized) = try convert(text, in: dir)
        let suffix = uncalibrated ? "+output-fit" : "+output-gain-fit"
        for layer in binarized {
            #expect(layer.method?.hasSuffix(suffix) == true, "\(layer.name): method \(layer.method ?? "-")")
        }
        #expect(report.warnings.contains { $0.contains("output-gain needs the layer calibrated") } == uncalibrated, "\(report.warnings)")
        // Largest over smallest mean |w| of the stored rows: one size when the rows were normalized
        // (in the float model dw3's rows differ 3.8-fold, conv1's 1.9-fold).
        let file = try MBMFile.open(path: out)
        for layer in binarized where !uncalibrated {
            guard let c = file.model.graph.constants.first(where: { $0.name == layer.name }), case .binarized(let p) = c.storage,
                  c.shape.count == 4 else { continue }
            let w = p.dequantized(), rows = c.shape[0], d = w.count / rows
            let means = (0..<rows).map { r in w[(r * d)..<((r + 1) * d)].reduce(0.0) { $0 + Double(abs($1)) } / Double(d) }
            let spread = means.max()! / max(means.min()!, 1e-30)
            #expect(spread < 2, "\(layer.name): stored rows' mean |w| spread \(spread) (\(means))")
        }
        let check = try Verify.run(onnx: model, mbm: out, options: Verify.Options())
        #expect(check.passed, "\(check.failures)")
    }

    @Test func badCalibrationInputsWriteNothing() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = try writeText(Self.policy + "  bits: 2\n", "fit.txt", in: dir)
        let out = dir.appendingPathComponent("never.mbm").path
        // float64 is converted (as the runtime holds it); integers are refused.
        let integers = dir.appendingPathComponent("int32.npy").path
        try NPY.write(NPYArray(elementType: .int32, shape: [2, 3, 32, 32], data: [UInt8](repeating: 0, count: 2 * 3 * 32 * 32 * 4)), to: integers)
        let cases: [(String?, String)] = [
            (nil, "pass --calibrate"),
            (try inputs([4, 3, 32, 32], seed: 1, in: dir, poison: .nan), "must be finite"),
            (try inputs([4, 3, 32, 32], seed: 1, in: dir, poison: .infinity), "must be finite"),
            (try inputs([4, 3, 16, 32], seed: 1, in: dir), "axis 2 differs"),
            (try inputs([4, 32, 32], seed: 1, in: dir), "rank 4"),
            (integers, "the model takes float"),
        ]
        for (path, expected) in cases {
            var options = Conversion.Options()
            options.calibrate = path
            do {
                _ = try Conversion.run(model: model, policy: policy, output: out, options: options)
                Issue.record("calibration inputs \(path ?? "none"): the conversion did not fail")
            } catch {
                #expect("\(error)".contains(expected), "calibration inputs \(path ?? "none"): \(error)")
                #expect(!"\(error)".contains("\n"), "not one line: \(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: out), "\(path ?? "none"): an output was written")
        }
    }

    /// Too few calibration inputs for a layer's X_qᵀX_q to be invertible (one input: the fully
    /// connected layer sees one row for its columns) is warned about and damped, never NaN; and
    /// all-zero inputs, which give the first layer nothing to fit, leave it binarized by the
    /// policy's weight-space method (the fit skipped that binarization, so it is made then), with
    /// a warning. Both files verify.
    @Test func fewOrZeroInputsAreDampedOrFallBack() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = try writeText(Self.policy + "  bits: 2\n  refit: alternating\n", "fit.txt", in: dir)
        let out = dir.appendingPathComponent("fit.mbm").path
        var options = Conversion.Options()
        options.calibrate = try inputs([1, 3, 32, 32], seed: 5, in: dir)
        let one = try Conversion.run(model: model, policy: policy, output: out, options: options)
        #expect(one.warnings.contains { $0.contains("1 calibration rows for") && $0.contains("damping") }, "\(one.warnings)")
        for layer in one.layers where layer.encoding == "binarized" {
            let error = try #require(layer.outputError, "\(layer.name)")
            #expect(error.isFinite && (layer.outputErrorWeightFit ?? .nan).isFinite, "\(layer.name): \(error)")
            #expect(layer.method?.hasSuffix("+output-fit") == true, "\(layer.name): \(layer.method ?? "-")")
        }
        #expect(try Verify.run(onnx: model, mbm: out, options: Verify.Options()).passed)

        let zeros = dir.appendingPathComponent("zeros.npy").path
        try NPY.write(NPYArray(floats: [Float](repeating: 0, count: 4 * 3 * 32 * 32), shape: [4, 3, 32, 32]), to: zeros)
        options.calibrate = zeros
        options.force = true
        let zero = try Conversion.run(model: model, policy: policy, output: out, options: options)
        #expect(zero.warnings.contains { $0.contains("all zero") && $0.contains("fitted to the weights instead") }, "\(zero.warnings)")
        let first = try #require(zero.layers.first { $0.encoding == "binarized" })
        #expect(first.method == "middle-out+alternating-refit" && first.outputError == nil, "\(first.name): \(first.method ?? "-")")
        let file = try MBMFile.open(path: out)
        for layer in zero.layers where layer.encoding == "binarized" {
            guard case .binarized? = file.model.graph.constants.first(where: { $0.name == layer.name })?.storage else {
                Issue.record("\(layer.name) is not stored binarized")
                continue
            }
        }
        #expect(try Verify.run(onnx: model, mbm: out, options: Verify.Options()).passed)
    }

    /// A layer whose fit does not fit the memory budget stops the conversion with one line that
    /// names it and what it holds; nothing is written. The same conversion passes without the budget.
    @Test func overTheMemoryBudgetWritesNothing() throws {
        let dir = try workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = try writeText(Self.policy + "  bits: 2\n", "fit.txt", in: dir)
        let out = dir.appendingPathComponent("never.mbm").path
        var options = Conversion.Options()
        options.calibrate = try inputs([8, 3, 32, 32], seed: 4, in: dir)
        options.maxMemory = 1 << 20
        do {
            _ = try Conversion.run(model: model, policy: policy, output: out, options: options)
            Issue.record("the conversion did not fail within 1 MiB")
        } catch {
            let text = "\(error)"
            #expect(text.contains("fit: output needs") && text.contains("over the memory budget of 1M") && text.contains("layer '"), "\(text)")
            #expect(!text.contains("\n"), "not one line: \(text)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        options.maxMemory = nil
        _ = try Conversion.run(model: model, policy: policy, output: out, options: options)
        #expect(FileManager.default.fileExists(atPath: out))
    }
}
