import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBRuntime
import MBTools

/// `mbbench run --models ...`: every model of the given folders against onnxruntime, each side
/// in its own child process per measurement (so peak memory is measured the same way for both),
/// rounds alternating ours / onnxruntime, per thread count.
struct FolderRunBench {
    var sources: [String]
    var threads: [Int]
    var repeats: Int
    var warmup: Int
    var rounds: Int
    var python: String
    var markdown: Bool

    /// One model to run: its file and its inputs (`NAME=path` when named by io.json, else bare paths in order).
    struct Entry {
        var stem: String
        var model: String
        var inputs: [String]
    }

    /// The models of `source` (a folder or one .onnx file) that have a `<stem>/input_0.npy`; the rest are reported as skipped.
    static func entries(_ source: String, skipped: inout [String]) throws -> [Entry] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else { throw BenchmarkError("--models \(source): no such file or folder") }
        let files: [String]
        if isDir.boolValue {
            files = try FileManager.default.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(".onnx") }.sorted()
                .map { (source as NSString).appendingPathComponent($0) }
        } else {
            files = [source]
        }
        var out: [Entry] = []
        for file in files {
            let stem = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            let folder = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(stem)
            guard FileManager.default.fileExists(atPath: folder + "/input_0.npy") else {
                skipped.append(stem)
                continue
            }
            var inputs: [String] = []
            if let data = FileManager.default.contents(atPath: folder + "/io.json"),
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let list = json["inputs"] as? [[String: Any]] {
                for item in list {
                    guard let name = item["name"] as? String, let f = item["file"] as? String else { continue }
                    inputs.append("\(name)=\(folder)/\(f)")
                }
            }
            if inputs.isEmpty {
                var k = 0
                while FileManager.default.fileExists(atPath: "\(folder)/input_\(k).npy") { inputs.append("\(folder)/input_\(k).npy"); k += 1 }
            }
            out.append(Entry(stem: stem, model: file, inputs: inputs))
        }
        return out
    }

    struct Row {
        var stem: String
        var threads: Int
        var ours: [RunOnceResult] = []
        var base: [RunOnceResult] = []
        var ratios: [Double] = []
        var difference: Double?
        var failure: String?
    }

    func run() throws {
        var skipped: [String] = []
        let entries = try sources.flatMap { try Self.entries($0, skipped: &skipped) }
        guard !entries.isEmpty else { throw BenchmarkError("no model with a <stem>/input_0.npy in \(sources.joined(separator: ", "))") }
        let hasORT = BenchPaths.pythonHas(python, modules: ["onnxruntime", "numpy"])
        if !hasORT { print("python3 with onnxruntime not found: reporting mbconvert alone") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-run-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let me = CommandLine.arguments[0]
        var rows: [Row] = []
        for e in entries {
            for t in threads {
                var row = Row(stem: e.stem, threads: t)
                let ourOut = dir + "/ours.npy", baseOut = dir + "/ort.npy"
                do {
                    for _ in 0..<max(1, rounds) {
                        let args = ["run-once", e.model, "--threads", String(t), "--warmup", String(warmup), "--repeats", String(repeats),
                                    "--output", ourOut] + e.inputs.flatMap { ["--input", $0] }
                        let ours = try RunOnceResult.child(me, args)
                        row.ours.append(ours)
                        guard hasORT else { continue }
                        let base = try RunOnceResult.child("/usr/bin/env", [python, BenchPaths.script("ort_run.py"), e.model] + e.inputs +
                            ["--threads", String(t), "--warmup", String(warmup), "--repeats", String(repeats), "--output", baseOut])
                        row.base.append(base)
                        row.ratios.append(ours.medianMs / base.medianMs)
                    }
                    if hasORT {
                        let a = try NPY.read(path: ourOut).floatValues(), b = try NPY.read(path: baseOut).floatValues()
                        let scale = max(b.map(abs).max() ?? 0, 0.01)
                        row.difference = a.count == b.count ? Double((zip(a, b).map { abs($0 - $1) }.max() ?? 0) / scale) : .infinity
                    }
                } catch {
                    row.failure = "\(error)"
                }
                rows.append(row)
                // With --markdown stdout is the table alone: progress goes to stderr.
                let progress = "  \(e.stem) threads=\(t): " + (row.failure ?? summary(row))
                if markdown { FileHandle.standardError.write(Data((progress + "\n").utf8)) } else { print(progress) }
            }
        }
        report(rows, skipped: skipped, hasORT: hasORT)
    }

    func summary(_ r: Row) -> String {
        let ours = median(r.ours.map(\.medianMs))
        guard !r.ratios.isEmpty else { return String(format: "%.2f ms", ours) }
        return String(format: "%.2f ms vs %.2f ms: %.2fx", ours, median(r.base.map(\.medianMs)), median(r.ratios))
    }

    /// The middle value (the mean of the two middle ones for an even count).
    func median(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return .nan }
        let s = v.sorted(), h = s.count / 2
        return s.count % 2 == 1 ? s[h] : (s[h - 1] + s[h]) / 2
    }
    func mb(_ bytes: Int?) -> String { bytes.map { String(format: "%.0f MB", Double($0) / 1e6) } ?? "?" }

    func report(_ rows: [Row], skipped: [String], hasORT: Bool) {
        var header = ["model", "threads", "ours median", "peak RSS"]
        if hasORT { header += ["onnxruntime median", "peak RSS", "ours / ort", "range", "max |Δ| / scale"] }
        var cells: [[String]] = []
        for r in rows {
            if let f = r.failure { cells.append([r.stem, String(r.threads), "failed: \(f)"] + Array(repeating: "", count: header.count - 3)); continue }
            var c = [r.stem, String(r.threads), String(format: "%.2f ms", median(r.ours.map(\.medianMs))), mb(r.ours.compactMap(\.peakRSSBytes).max())]
            if hasORT {
                c += [String(format: "%.2f ms", median(r.base.map(\.medianMs))), mb(r.base.compactMap(\.peakRSSBytes).max()),
                      String(format: "%.2fx", median(r.ratios)), String(format: "%.2f-%.2f", r.ratios.min() ?? .nan, r.ratios.max() ?? .nan),
                      r.difference.map { String(format: "%.1e", $0) } ?? "?"]
            }
            cells.append(c)
        }
        var summaryLines: [String] = []
        if hasORT {
            for t in threads {
                let ratios = rows.filter { $0.threads == t && $0.failure == nil }.map { median($0.ratios) }
                guard !ratios.isEmpty else { continue }
                let geo = exp(ratios.map { log($0) }.reduce(0, +) / Double(ratios.count))
                let worst = rows.filter { $0.threads == t && $0.failure == nil }.max { median($0.ratios) < median($1.ratios) }!
                summaryLines.append(String(format: "%d thread%@: geometric mean of ours / ort %.2fx over %d models; highest %.2fx (%@)",
                                           t, t == 1 ? "" : "s", geo, ratios.count, median(worst.ratios), worst.stem as NSString))
            }
        }
        let method = "median of \(repeats) runs after \(warmup) warm-up runs per child process; \(max(1, rounds)) alternating round(s) ours / onnxruntime per row, ratio = median of the per-round ratios (mean of the middle two for an even count); peak RSS = the child's VmHWM"
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)).map { "load average at the end: " + $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? ""
        if markdown {
            MarkdownReport.print(method: method, header: header, rows: cells,
                                 notes: summaryLines + (skipped.isEmpty ? [] : ["skipped (no `<stem>/input_0.npy`): " + skipped.joined(separator: ", ")]))
        } else {
            print(method)
            print(table(header: header, rows: cells), terminator: "")
            for l in summaryLines { print(l) }
            if !skipped.isEmpty { print("skipped (no <stem>/input_0.npy): " + skipped.joined(separator: ", ")) }
            print(load)
        }
    }
}

/// What a child run prints as its last line.
struct RunOnceResult: Codable {
    var medianMs: Double
    var minMs: Double
    var peakRSSBytes: Int?
    /// Median process CPU time (user + system, every thread) per run: robust to other processes
    /// taking the cores (a one-thread run's CPU time is its work), but counts spinning helpers.
    var cpuMedianMs: Double?
    /// `.mbm` runs: every constant the model keeps (`MBModel.weightBytes`); the binarized weights
    /// of Conv/Gemm/MatMul as held and as stored in the file; how many of them run packed.
    var weightBytes: Int?
    var binarizedResidentBytes: Int?
    var binarizedStoredBytes: Int?
    var packedLayers: Int?
    var binarizedLayers: Int?

    /// Runs `executable arguments` and decodes the result it prints last (its stderr passes through).
    static func child(_ executable: String, _ arguments: [String]) throws -> RunOnceResult {
        try ChildProcess.lastLineJSON(RunOnceResult.self, executable, arguments)
    }
}

/// The child process of `run --models`: loads one model, times it, prints a RunOnceResult as JSON.
struct RunOnce: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-once", shouldDisplay: false)

    @Argument var model: String
    @Option(name: .customLong("input"), help: "NAME=file.npy or a bare path (given to the model's inputs in order).")
    var inputs: [String] = []
    @Option var threads = 1
    @Option var warmup = 3
    @Option var repeats = 20
    @Option(help: "Where to write the first output (.npy).")
    var output: String?
    @Option(help: "How binarized weights run (.mbm).")
    var weights: MBModel.Options.Weights = .auto
    @Option(help: "Lookup tables for binarized Convs (.mbm): float or int8 (lossy).")
    var convTables: MBModel.Options.ConvTables = .float

    func run() throws {
        let m = try ModelLoading.load(path: model, weights: weights, convTables: convTables)
        var feeds: [String: MBTensor] = [:]
        for (k, spec) in inputs.enumerated() {
            var name: String, path = spec
            if let eq = spec.firstIndex(of: "="), m.inputs.contains(where: { $0.name == String(spec[..<eq]) }) {
                name = String(spec[..<eq])
                path = String(spec[spec.index(after: eq)...])
            } else {
                guard k < m.inputs.count else { throw BenchmarkError("\(model): more inputs given than the model has (\(m.inputs.count))") }
                name = m.inputs[k].name
            }
            feeds[name] = try MBTensor(npy: NPY.read(path: path))
        }
        let session = m.makeSession(.init(threads: threads))
        var out = try session.run(feeds)
        for _ in 1..<max(warmup, 1) { out = try session.run(feeds) }
        var times: [Double] = [], cpu: [Double] = []
        func cpuMs() -> Double {
            var u = rusage()
            #if os(Linux)
            getrusage(RUSAGE_SELF.rawValue, &u)
            #else
            getrusage(RUSAGE_SELF, &u)
            #endif
            return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3
        }
        for _ in 0..<max(repeats, 1) {
            let c0 = cpuMs()
            let start = DispatchTime.now().uptimeNanoseconds
            out = try session.run(feeds)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            cpu.append(cpuMs() - c0)
        }
        times.sort()
        cpu.sort()
        if let output, let first = m.outputs.first, let t = out[first.name] { try NPY.write(t.npy, to: output) }
        var r = RunOnceResult(medianMs: times[times.count / 2], minMs: times[0], peakRSSBytes: ProcessMemory.peakBytes())
        r.cpuMedianMs = cpu[cpu.count / 2]
        r.weightBytes = m.weightBytes
        if Inspect.isMBM(path: model) {
            let stored = Dictionary(try Inspect.summarizeMBM(path: model).tensors.map { ($0.name, $0.bytes) }, uniquingKeysWith: { a, _ in a })
            r.binarizedResidentBytes = m.weightChoices.reduce(0) { $0 + $1.residentBytes }
            r.binarizedStoredBytes = m.weightChoices.reduce(0) { $0 + (stored[$1.weight] ?? 0) }
            r.packedLayers = m.weightChoices.filter(\.packed).count
            r.binarizedLayers = m.weightChoices.count
        }
        print(String(decoding: try JSONEncoder().encode(r), as: UTF8.self))
    }
}
