import ArgumentParser
import Foundation
import MBConvert
import MBRuntime

struct CalibrationBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibration",
        abstract: "Top-1 agreement and cosine with the float model against average bits, with and without calibration.",
        discussion: """
            Every Conv/Gemm/MatMul weight binarized (`average: B`, P searched) except the first weighted \
            layer, kept float32; tensor and channel scales; calibrated on one set of inputs, evaluated on \
            another (default: the PaddleOCR classifier's calib_x.npy and eval_x.npy in ../shared). \
            Extras, each a column set of its own run: --refit / --alternating (policy 'refit: true' / \
            'refit: alternating'), --sensitivity (a whole-model target instead of 'average: B' per layer; \
            the calibrated columns use 'allocate: sensitivity', the others the weight-error spread).
            """
    )

    @OptionGroup var data: ClassifierData

    @Option(help: "Average bits to try, comma separated.")
    var bits = "1.4,2.0,2.5,3.4,4,6,8"

    @Flag(help: "Refit the level scales (least squares) of every binarized weight (policy 'refit: true').")
    var refit = false

    @Flag(help: "Alternating refit of every binarized weight (policy 'refit: alternating'); overrides --refit.")
    var alternating = false

    @Flag(help: "Spread the bits with 'target: {average_bits: B, allocate: sensitivity}' instead of 'average: B' per layer (the no-calibration columns then use the weight-error spread, which needs no data).")
    var sensitivity = false

    @Option(help: "Scales to try, comma separated (tensor, channel).")
    var scales = "tensor,channel"

    func run() throws {
        let (model, calibration, eval, threads) = (data.model, data.calibration, data.eval, data.threads)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-calibration-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let float = try ModelLoading.load(path: model)
        let feeds = try Calibration.loadInputs(eval, model: float)
        let reference = try float.makeSession(.init(threads: threads)).run(feeds)
        let output = float.outputs[0].name
        var rows: [[String]] = []
        for b in bits.split(separator: ",").compactMap({ Double($0) }) {
            for scale in scales.split(separator: ",").map(String.init) {
                let policy = dir + "/p.txt"
                let calibratedPolicy = dir + "/p-cal.txt"
                let refitValue = alternating ? "alternating" : "\(refit)"
                func text(allocate: String) -> String {
                    // max_bits: the spread's ceiling; the widest bit width the average search may use at B.
                    let storage = sensitivity ? "" : "    average: \(b)\n"
                    let target = sensitivity ? "target: {average_bits: \(b), max_bits: \(min(8, max(3, Int(b.rounded(.up)) + 1))), allocate: \(allocate)}\n" : ""
                    return "version: 1\n" + target + """
                        rules:
                          - match: {position: first}
                            keep: float32
                          - match: {op: [Conv, Gemm, MatMul]}
                        """ + "\n" + storage + "    scale: \(scale)\n    refit: \(refitValue)\n"
                }
                try text(allocate: "weight-error").write(toFile: policy, atomically: true, encoding: .utf8)
                try text(allocate: "sensitivity").write(toFile: calibratedPolicy, atomically: true, encoding: .utf8)
                var row = [String(format: "%.1f", b), scale]
                var realized = ""
                for calibrate in [false, true] {
                    var options = Conversion.Options(force: true)
                    options.threads = threads
                    if calibrate { options.calibrate = calibration }
                    let out = dir + "/m.mbm"
                    let report = try Conversion.run(model: model, policy: calibrate ? calibratedPolicy : policy, output: out, options: options)
                    let binarized = try MBModel(contentsOf: URL(fileURLWithPath: out)).makeSession(.init(threads: threads)).run(feeds)
                    let check = Verify.compare(output, reference[output]!, binarized[output]!)
                    realized = String(format: "%.3f", report.totals?.binarizedBitsPerWeight.map { _ in
                        report.layers.filter { $0.encoding == "binarized" }.reduce(0.0) { $0 + $1.averageBits * Double($1.elements) }
                            / Double(max(1, report.layers.filter { $0.encoding == "binarized" }.reduce(0) { $0 + $1.elements }))
                    } ?? 0)
                    row += [String(format: "%.1f%%", 100 * (check.top1Agreement ?? 0)), String(format: "%.1f%%", 100 * (check.marginAgreement ?? 0)),
                            String(format: "%.4f", check.cosine)]
                    if calibrate {
                        row.append(String(format: "%.2f s", report.calibrationSeconds ?? 0))
                        if sensitivity { row.append(String(format: "%.2f s", report.allocationSeconds ?? 0)) }
                    }
                }
                row.insert(realized, at: 1)
                rows.append(row)
            }
        }
        let extras = (alternating ? "; alternating refit" : refit ? "; level scales refit" : "")
            + (sensitivity ? "; bits spread by target (no cal.: weight-error spread; cal.: allocate: sensitivity)" : "; average: B per layer")
        print("\(model): \(feeds.values.first!.shape[0]) evaluation inputs; first weighted layer float\(extras)")
        let header = ["avg bits", "realized", "scale", "top-1", "margin", "cosine", "top-1 cal.", "margin cal.", "cosine cal.", "calibration"]
            + (sensitivity ? ["sensitivity"] : [])
        print(table(header: header, rows: rows, rightAligned: Set(header.indices).subtracting([2])), terminator: "")
        print("targets: >= 95 % agreement at 3.4 bits or fewer and >= 99 % at 8 bits or fewer; calibration under 10 s for 64 inputs")
    }
}
