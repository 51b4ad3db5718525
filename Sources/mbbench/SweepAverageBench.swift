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

    @Option(help: "Also write the sweep as an HTML page (heat maps over the simplex for three widths, bar charts of top-1 agreement and weight error per P).")
    var report: String?

    func validate() throws {
        guard (1...8).contains(maxBits) else { throw ValidationError("--max-bits must be in 1...8") }
        guard step > 0, step <= 1, abs((1 / step).rounded() * step - 1) < 1e-9 else { throw ValidationError("--step must divide 1 (0.1, 0.05, ...)") }
    }

    func run() throws {
        var options = ModelSweep.Options()
        options.averages = bits.split(separator: ",").compactMap { Double($0) }
        options.bits = Array(1...maxBits)
        options.units = Int((1 / step).rounded())
        options.scale = scale
        options.threads = data.threads
        if calibrate { options.calibrate = data.calibration }
        let result = try ModelSweep.run(model: data.model, eval: data.eval, options: options)
        print(result.renderText(), terminator: "")
        if let report {
            try SweepReport.render(title: "P at a fixed average: \((data.model as NSString).lastPathComponent)", result, units: options.units)
                .write(toFile: report, atomically: true, encoding: .utf8)
        }
    }
}
