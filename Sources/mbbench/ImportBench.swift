import ArgumentParser
import Foundation
import MBConvert

struct ImportBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a large single-tensor model (embedded and external data) against Python's onnx.load."
    )

    @Option(help: "Size of the tensor in MB (float32).")
    var megabytes = 400

    @Option(help: "Runs per measurement (the median time is reported).")
    var repeats = 3

    @Option(help: "Folder for the generated models (default: a temporary folder, removed afterwards).")
    var workdir: String?

    @Option(help: "Python interpreter for the baseline (default: $MBCONVERT_PYTHON, else the checkout's .venv/bin/python, else python3).")
    var python: String?

    func run() throws {
        let python = self.python ?? BenchPaths.defaultPython
        let dir = workdir ?? FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-import-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let floats = megabytes * 1_000_000 / 4
        print("making models: \(floats) float32 values (\(megabytes) MB) in \(dir)")
        let (embedded, external) = try ImportBenchmark.makeModels(in: dir, floats: floats)
        let fileBytes = (try FileManager.default.attributesOfItem(atPath: embedded)[.size] as? Int) ?? 0
        let me = CommandLine.arguments[0]
        let script = BenchPaths.script("onnx_load.py")
        let hasPython = BenchPaths.pythonHas(python, modules: ["onnx"])
        if !hasPython { print("python3 with onnx not found: reporting mbconvert alone") }

        func median(_ runs: [ImportBenchmark.Measurement]) -> ImportBenchmark.Measurement {
            let sorted = runs.sorted { $0.seconds < $1.seconds }
            return ImportBenchmark.Measurement(seconds: sorted[sorted.count / 2].seconds, peakRSSBytes: runs.map(\.peakRSSBytes).max()!)
        }
        var rows: [[String]] = []
        for (label, path) in [("embedded raw_data", embedded), ("external data", external)] {
            let ours = median(try (0..<repeats).map { _ in try ImportBenchmark.child(me, ["import-once", path]) })
            var row = [label, String(format: "%.3f s", ours.seconds), mb(ours.peakRSSBytes),
                       String(format: "%.2fx file", Double(ours.peakRSSBytes) / Double(fileBytes))]
            if hasPython {
                let base = median(try (0..<repeats).map { _ in try ImportBenchmark.child("/usr/bin/env", [python, script, path]) })
                row += [String(format: "%.3f s", base.seconds), mb(base.peakRSSBytes),
                        String(format: "%.2fx", base.seconds / ours.seconds)]
            }
            rows.append(row)
        }
        var header = ["model", "mbconvert", "peak RSS", "RSS / file"]
        if hasPython { header += ["onnx.load", "peak RSS", "speedup"] }
        print("file: \(mb(fileBytes)); median of \(repeats) runs, each in a fresh process")
        print(table(header: header, rows: rows), terminator: "")
        print("external data is mapped, not read: its pages load when first used (onnx.load reads it all)")
        print("targets: no slower than onnx.load; peak RSS < 2.2x file (embedded), < 50 MB (external)")
    }

    private func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}

/// The child process of `import`: one import, then its measurement as JSON.
struct ImportOnce: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import-once", shouldDisplay: false)

    @Argument var path: String

    func run() throws {
        let m = try ImportBenchmark.measureOnce(path: path)
        let data = try JSONEncoder().encode(m)
        print(String(decoding: data, as: UTF8.self))
    }
}

enum BenchPaths {
    /// Scripts/bench/NAME in the source checkout this binary was built from.
    static func script(_ name: String) -> String {
        let here = URL(fileURLWithPath: #filePath)  // Sources/mbbench/ImportBench.swift
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts/bench/\(name)").path
    }

    /// The one rule the scripts and tests follow too (Scripts/lib/python.sh): $MBCONVERT_PYTHON,
    /// else the checkout's .venv/bin/python (Scripts/setup.sh), else python3 on the PATH.
    static var defaultPython: String {
        if let p = ProcessInfo.processInfo.environment["MBCONVERT_PYTHON"], !p.isEmpty { return p }
        let venv = URL(fileURLWithPath: script("")).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
    }

    static func pythonHas(_ python: String, modules: [String]) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", "import " + modules.joined(separator: ", ")]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}
