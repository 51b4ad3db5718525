import ArgumentParser
import Foundation
import MBConvert
import MBRuntime
import MBTools

/// P at a fixed average, answered on the model: every P on a grid with average B, the same P in
/// every binarized layer, measured by the whole model's agreement with the float model (not
/// only by the weight error).
struct SweepAverageBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep-average",
        abstract: "Top-1 agreement, cosine and weight error of the whole model for every P with a given average (every binarized layer the same P).",
        discussion: """
            For each B, every bit distribution P over widths 1...--max-bits whose fractions are multiples \
            of --step and whose average is B; every Conv/Gemm/MatMul weight binarized with that P \
            (middle-out masks, --scale scales) except the first weighted layer, kept float32; \
            evaluated on the evaluation inputs against the float model (default: the PaddleOCR \
            classifier's eval_x.npy in ../shared). --calibrate corrects every conversion on the \
            calibration inputs first. Rows sorted by top-1 agreement, then cosine.
            """
    )

    @OptionGroup var data: ClassifierData

    @Option(help: "Averages B to sweep, comma separated.")
    var bits = "1.4,2.0"

    @Option(help: "Widest bit width in P.")
    var maxBits = 3

    @Option(help: "Grid step of the fractions.")
    var step = 0.05

    @Option(help: "Scales (tensor or channel).")
    var scale = "channel"

    @Flag(help: "Calibrate every conversion on the calibration inputs (--calibrate).")
    var calibrate = false

    @Option(help: "Also write the sweep as an HTML page (bar charts of top-1 agreement and weight error per P).")
    var report: String?

    func validate() throws {
        guard (1...8).contains(maxBits) else { throw ValidationError("--max-bits must be in 1...8") }
        guard step > 0, step <= 1, abs((1 / step).rounded() * step - 1) < 1e-9 else { throw ValidationError("--step must divide 1 (0.1, 0.05, ...)") }
    }

    /// Every P over widths 1...maxBits with fractions k·step (k integer) and average `b`.
    static func grid(average b: Double, maxBits: Int, step: Double) -> [[Double]] {
        let units = Int((1 / step).rounded())
        var out: [[Double]] = []
        func walk(_ width: Int, _ left: Int, _ sofar: [Int]) {
            if width == maxBits {
                let counts = sofar + [left]
                let avg = counts.enumerated().reduce(0.0) { $0 + Double($1.offset + 1) * Double($1.element) } / Double(units)
                if abs(avg - b) < 1e-9 { out.append(counts.map { Double($0) / Double(units) }) }
                return
            }
            for k in 0...left { walk(width + 1, left - k, sofar + [k]) }
        }
        walk(1, units, [])
        return out
    }

    func run() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-sweep-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let float = try ModelLoading.load(path: data.model)
        let feeds = try Calibration.loadInputs(data.eval, model: float)
        let reference = try float.makeSession(.init(threads: data.threads)).run(feeds)
        let output = float.outputs[0].name
        let note = "\(data.model): \(feeds.values.first!.shape[0]) evaluation inputs; first weighted layer float32, every other Conv/Gemm/MatMul the same P, \(scale) scales\(calibrate ? ", calibrated" : "")"
        print(note)
        var sweeps: [(average: Double, points: [SweepReport.Point])] = []
        for b in bits.split(separator: ",").compactMap({ Double($0) }) {
            let grid = Self.grid(average: b, maxBits: maxBits, step: step)
            var rows: [(p: [Double], top1: Double, cosine: Double, sqnr: Double, error: Double)] = []
            for p in grid {
                let mix = p.enumerated().filter { $0.element > 0 }.map { String(format: "%d: %.4f", $0.offset + 1, $0.element) }.joined(separator: ", ")
                let policy = dir + "/p.txt", out = dir + "/m.mbm"
                try """
                    version: 1
                    rules:
                      - match: {position: first}
                        keep: float32
                      - match: {op: [Conv, Gemm, MatMul]}
                        mix: {\(mix)}
                        scale: \(scale)

                    """.write(toFile: policy, atomically: true, encoding: .utf8)
                var options = Conversion.Options(force: true)
                options.threads = data.threads
                if calibrate { options.calibrate = data.calibration }
                let report = try Conversion.run(model: data.model, policy: policy, output: out, options: options)
                let y = try MBModel(contentsOf: URL(fileURLWithPath: out)).makeSession(.init(threads: data.threads)).run(feeds)
                let check = Verify.compare(output, reference[output]!, y[output]!)
                let bin = report.layers.filter { $0.encoding == "binarized" }
                let weights = bin.reduce(0) { $0 + $1.elements }
                let error = bin.reduce(0.0) { $0 + ($1.normalizedError ?? 0) * Double($1.elements) } / Double(max(1, weights))
                rows.append((p, check.top1Agreement ?? 0, check.cosine, check.sqnrDB, error))
            }
            // The page keeps the grid's order (1-bit fraction rising); the printed table sorts by top-1.
            sweeps.append((b, rows.map { SweepReport.Point(mix: $0.p.map { String(format: "%.2f", $0) }.joined(separator: "/"), top1: $0.top1,
                                                             cosine: $0.cosine, weightError: $0.error) }))
            rows.sort { ($0.top1, $0.cosine) > ($1.top1, $1.cosine) }
            print("\nB = \(b): \(grid.count) distributions P over widths 1...\(maxBits) (step \(step))")
            let header = ["P (" + (1...maxBits).map { "\($0)-bit" }.joined(separator: "/") + ")", "top-1", "cosine", "SQNR dB", "weight error"]
            print(table(header: header, rows: rows.map { r in
                [r.p.map { String(format: "%.2f", $0) }.joined(separator: "/"), String(format: "%.1f%%", 100 * r.top1),
                 String(format: "%.4f", r.cosine), String(format: "%.2f", r.sqnr), String(format: "%.4f", r.error)]
            }, rightAligned: [1, 2, 3, 4]), terminator: "")
        }
        if let report {
            try SweepReport.render(title: "P at a fixed average: \((data.model as NSString).lastPathComponent)", note: note, sweeps: sweeps)
                .write(toFile: report, atomically: true, encoding: .utf8)
        }
    }
}
