import ArgumentParser
import Foundation
import MBConvert
import MBFormat

struct ConvertBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Conversion time (squeezenet_random, a 61M-weight AlexNet at 1.4 bits), file sizes, and .mbm load speed.",
        discussion: """
            Baseline in the same run: the same conversion with every weight kept float32 (import, \
            fold, write: the I/O floor), so the ratio is what binarization adds. Load speed: \
            MBMFile.open on the float32 .mbm, with and without CRC verification (warm page cache).
            """
    )

    @Option(help: "Folder with the shared models (squeezenet_random.onnx, light_bvlc_alexnet.onnx).")
    var models = "../shared/models"

    @Option(help: "Runs per measurement (median reported).")
    var repeats = 3

    @Option(help: "Worker threads for binarization.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Folder for the generated files (kept; default: a temporary folder, removed afterwards).")
    var workdir: String?

    func run() throws {
        let dir = workdir ?? FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-convert-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let policy14 = dir + "/p14.txt", policyFloat = dir + "/pfloat.txt"
        try "version: 1\nrules:\n  - match: {op: [Conv, Gemm, MatMul]}\n    mix: {1: 0.7, 2: 0.2, 3: 0.1}\n".write(toFile: policy14, atomically: true, encoding: .utf8)
        try "version: 1\ndefault:\n  keep: float32\n".write(toFile: policyFloat, atomically: true, encoding: .utf8)

        let squeeze = models + "/squeezenet_random.onnx"
        guard FileManager.default.fileExists(atPath: squeeze) else {
            throw ValidationError("\(squeeze) not found: pass --models with the folder of shared models")
        }
        print("making the 61M-weight AlexNet (seeded He-normal weights)...")
        let (alexnet, weights) = try RunBenchmark.makeAlexNet(from: models + "/light_bvlc_alexnet.onnx", in: dir)
        print("  \(weights) weights, \(formatBytes(try size(alexnet))) ONNX")

        func timed(_ model: String, _ policy: String, _ out: String) throws -> (Double, ConversionReport) {
            var times: [Double] = []
            var last: ConversionReport?
            for _ in 0..<repeats {
                try? FileManager.default.removeItem(atPath: out)
                var options = Conversion.Options(force: true)
                options.threads = threads
                let start = DispatchTime.now().uptimeNanoseconds
                last = try Conversion.run(model: model, policy: policy, output: out, options: options)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return (times.sorted()[times.count / 2], last!)
        }
        var rows: [[String]] = []
        for (label, model) in [("squeezenet_random", squeeze), ("alexnet 61M", alexnet)] {
            let (tBin, rBin) = try timed(model, policy14, dir + "/b.mbm")
            let (tFloat, _) = try timed(model, policyFloat, dir + "/f.mbm")
            let t = rBin.totals!
            rows.append([label, String(format: "%.3f s", tBin), String(format: "%.3f s", tFloat), String(format: "%.2fx", tBin / tFloat),
                         formatBytes(t.onnxBytes), formatBytes(t.mbmBytes), String(format: "%.1fx", t.compression),
                         String(format: "%.3f", t.bitsPerWeight)])
        }
        print("conversion at 7/2/1 Middle-Out, tensor scales, \(threads) threads, median of \(repeats):")
        print(table(header: ["model", "1.4-bit", "float32 keep", "ratio", "ONNX", ".mbm", "smaller", "bits/weight"], rows: rows,
                    rightAligned: [1, 2, 3, 4, 5, 6, 7]), terminator: "")

        // Load speed on the float32 .mbm of the AlexNet (the largest file).
        let floatMBM = dir + "/f.mbm"
        let bytes = try size(floatMBM)
        _ = try MBMFile.open(path: floatMBM)  // warm the page cache
        var loadRows: [[String]] = []
        for verify in [true, false] {
            var times: [Double] = []
            for _ in 0..<max(repeats, 5) {
                let start = DispatchTime.now().uptimeNanoseconds
                let f = try MBMFile.open(path: floatMBM, options: .init(verifyChecksums: verify))
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                withExtendedLifetime(f) {}
            }
            let t = times.sorted()[times.count / 2]
            loadRows.append([verify ? "CRC on" : "CRC off", String(format: "%.4f s", t), String(format: "%.2f s/GB", t / (Double(bytes) / 1e9)),
                             String(format: "%.2f GB/s", Double(bytes) / 1e9 / t)])
        }
        print("\nloading \(formatBytes(bytes)) .mbm (mmap + validation), median:")
        print(table(header: ["checksums", "time", "per GB", "speed"], rows: loadRows, rightAligned: [1, 2, 3]), terminator: "")
        print("targets: the 61M AlexNet at 1.4 bits converts in under 5 s on two cores")
    }

    private func size(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }
}
