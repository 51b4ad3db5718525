import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBRuntime

extension MBModel.Options.Weights: ExpressibleByArgument {}
extension MBModel.Options.ConvTables: ExpressibleByArgument {}

/// `mbbench weights`: binarized weights at run time. Every model (a folder's `<stem>.onnx` with
/// `<stem>/input_0.npy`) converted with each policy, then the float model and the `.mbm` in each
/// weights mode run by child processes (`run-once`), alternating per round, per thread count.
/// Prints each mode's latency over the float model's (same rounds), the binarized weights'
/// resident bytes over their stored bytes, every constant's bytes and each child's peak RSS.
struct WeightsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Packed and auto weights against the float model: latency ratios, resident vs stored weight bytes, peak RSS.")

    @Option(name: .customLong("models"), help: "A models folder or one .onnx file (repeatable).")
    var sources: [String] = []
    @Option(name: .customLong("policy"), help: "Policy file to convert with (repeatable).")
    var policies: [String] = []
    @Option(name: .customLong("mode"), help: "Weights modes to run (repeatable; default packed and auto).")
    var modes: [MBModel.Options.Weights] = []
    @Option(name: .customLong("threads"), help: "Thread counts (repeatable; default 1 and 2).")
    var threadCounts: [Int] = []
    @Option var repeats = 7
    @Option var warmup = 2
    @Option(help: "Alternating rounds float / modes per row; ratios are medians of the per-round ratios.")
    var rounds = 3
    @Option(help: "Lookup tables for binarized Convs in the .mbm runs: float or int8 (lossy).")
    var convTables: MBModel.Options.ConvTables = .float
    @Flag(help: "Markdown table headed by the date and command.")
    var markdown = false

    func run() throws {
        guard !sources.isEmpty, !policies.isEmpty else { throw ValidationError("give --models and --policy") }
        var skipped: [String] = []
        let entries = try sources.flatMap { try FolderRunBench.entries($0, skipped: &skipped) }
        let modes = self.modes.isEmpty ? [MBModel.Options.Weights.packed, .auto] : self.modes
        let threads = threadCounts.isEmpty ? [1, 2] : threadCounts
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-weights-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let me = CommandLine.arguments[0]
        let distanceBefore = threads.contains { $0 > 1 } ? CoreDistance.note() : ""
        var header = ["model", "policy", "threads", "float"]
        for m in modes { header += ["\(m.rawValue)", "\(m.rawValue) / float", "CPU time ratio"] }
        header += ["packed layers (auto)", "resident / stored (packed)", "weights MB float / packed / auto", "peak RSS MB float / packed / auto", "max |Δ| / scale"]
        var cells: [[String]] = []
        var worst: [String: Double] = [:]
        for e in entries {
            for policy in policies {
                let pname = ((policy as NSString).lastPathComponent as NSString).deletingPathExtension
                let mbm = dir + "/\(e.stem)-\(pname).mbm"
                do {
                    _ = try Conversion.run(model: e.model, policy: policy, output: mbm, options: .init(force: true))
                } catch {
                    cells.append([e.stem, pname, "", "conversion failed: \(error)"] + Array(repeating: "", count: header.count - 4))
                    continue
                }
                for t in threads {
                    var float: [RunOnceResult] = [], results: [MBModel.Options.Weights: [RunOnceResult]] = [:], ratios: [MBModel.Options.Weights: [Double]] = [:]
                    var cpuRatios: [MBModel.Options.Weights: [Double]] = [:]
                    var difference = 0.0
                    do {
                        for _ in 0..<max(1, rounds) {
                            let base = ["--threads", String(t), "--warmup", String(warmup), "--repeats", String(repeats)] + e.inputs.flatMap { ["--input", $0] }
                            let f = try RunOnceResult.child(me, ["run-once", e.model, "--output", dir + "/float.npy"] + base)
                            float.append(f)
                            for m in modes {
                                let r = try RunOnceResult.child(me, ["run-once", mbm, "--weights", m.rawValue, "--conv-tables", convTables.rawValue,
                                                                           "--output", dir + "/\(m.rawValue).npy"] + base)
                                results[m, default: []].append(r)
                                ratios[m, default: []].append(r.medianMs / f.medianMs)
                                if let a = r.cpuMedianMs, let b = f.cpuMedianMs { cpuRatios[m, default: []].append(a / b) }
                            }
                        }
                        // Packed against expanded-equivalent outputs: every mode against the first.
                        if let first = modes.first {
                            let a = try NPY.read(path: dir + "/\(first.rawValue).npy").floatValues()
                            for m in modes.dropFirst() {
                                let b = try NPY.read(path: dir + "/\(m.rawValue).npy").floatValues()
                                let scale = max(b.map(abs).max() ?? 0, 1e-30)
                                difference = max(difference, Double((zip(a, b).map { abs($0 - $1) }.max() ?? 0) / scale))
                            }
                        }
                    } catch {
                        cells.append([e.stem, pname, String(t), "failed: \(error)"] + Array(repeating: "", count: header.count - 4))
                        continue
                    }
                    var row = [e.stem, pname, String(t), String(format: "%.2f ms", median(float.map(\.medianMs)))]
                    for m in modes {
                        let ratio = median(ratios[m]!)
                        row += [String(format: "%.2f ms", median(results[m]!.map(\.medianMs))), String(format: "%.2fx", ratio),
                                String(format: "%.2fx", median(cpuRatios[m] ?? []))]
                        worst["\(m.rawValue) \(pname) t=\(t)"] = max(worst["\(m.rawValue) \(pname) t=\(t)"] ?? 0, ratio)
                        worst["\(m.rawValue) \(pname) t=\(t) (CPU time)"] = max(worst["\(m.rawValue) \(pname) t=\(t) (CPU time)"] ?? 0, median(cpuRatios[m] ?? []))
                    }
                    let auto = results[.auto]?.last, packed = results[.packed]?.last
                    row.append(auto.map { "\($0.packedLayers ?? 0) of \($0.binarizedLayers ?? 0)" } ?? "")
                    row.append(packed.map { p in
                        guard let r = p.binarizedResidentBytes, let s = p.binarizedStoredBytes, s > 0 else { return "?" }
                        return String(format: "%.2fx (%.2f / %.2f MB)", Double(r) / Double(s), Double(r) / 1e6, Double(s) / 1e6)
                    } ?? "")
                    func mb(_ v: Int?) -> String { v.map { String(format: "%.1f", Double($0) / 1e6) } ?? "?" }
                    row.append("\(mb(float.last?.weightBytes)) / \(mb(packed?.weightBytes)) / \(mb(auto?.weightBytes))")
                    row.append("\(mb(float.compactMap(\.peakRSSBytes).max())) / \(mb(results[.packed]?.compactMap(\.peakRSSBytes).max())) / \(mb(results[.auto]?.compactMap(\.peakRSSBytes).max()))")
                    row.append(modes.count > 1 ? String(format: "%.1e", difference) : "")
                    cells.append(row)
                    if !markdown { print("  " + row.joined(separator: "  ")) }
                }
            }
        }
        let method = "median of \(repeats) runs after \(warmup) warm-up runs per child process; \(max(1, rounds)) alternating round(s) float / modes per row; ratio = median of the per-round ratios (wall time; CPU time ratio: of the children's per-run process CPU time, robust to other processes at one thread); resident / stored = the binarized Conv/Gemm/MatMul weights' bytes held in packed mode over their bytes in the file; peak RSS = the child's VmHWM; max |Δ| = the modes' outputs against the first mode's"
        var load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)).map { "load average at the end: " + $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? ""
        // Two-thread runs depend on how far apart the host runs the two CPUs (`CoreDistance`).
        if !distanceBefore.isEmpty { load += "; \(distanceBefore) before, \(CoreDistance.note()) after" }
        if markdown {
            print("Measured \(ISO8601DateFormatter().string(from: Date())) with `mbbench \(CommandLine.arguments.dropFirst().joined(separator: " "))`; \(method); \(load).\n")
            print("| " + header.joined(separator: " | ") + " |")
            print("|" + header.map { _ in "---" }.joined(separator: "|") + "|")
            for c in cells { print("| " + c.joined(separator: " | ") + " |") }
            print("")
        } else {
            print(method)
            print(table(header: header, rows: cells), terminator: "")
            print(load)
        }
        for (k, v) in worst.sorted(by: { $0.key < $1.key }) { print((markdown ? "- " : "") + String(format: "slowest %@ / float: %.2fx", k as NSString, v)) }
        if !skipped.isEmpty { print("skipped (no <stem>/input_0.npy): " + skipped.joined(separator: ", ")) }
    }

    func median(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return .nan }
        let s = v.sorted(), h = s.count / 2
        return s.count % 2 == 1 ? s[h] : (s[h - 1] + s[h]) / 2
    }
}
