import ArgumentParser
import Foundation
import MBConvert
import MBTools

struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Binarize tensors with several settings and compare reconstruction error and storage cost.",
        discussion: """
            Sources: a .npy file, a weight of an .onnx model (--tensor NAME, repeatable, or --all), or a seeded \
            synthetic tensor (--synthetic normal:1000000:0; also laplace and uniform; COUNT may be dimensions \
            like 64x576). Settings: homogeneous bits (--bits 1,2,3,4), mixes (--mix 7/2/1 is tenths over bits \
            1/2/3, several separated by commas; --mix 0.6,0.3,0.1@2,3,4 gives fractions and bit widths, one per \
            --mix), average bits only (--average 1.4: the best distribution on a 0.05 grid), and \
            --sweep-average 1.4 (every distribution on the grid with that average). Mask methods: \
            \(MaskMethod.allCases.map(\.rawValue).joined(separator: ", ")) (only the first four are in the paper). \
            Each tensor is also checked for exact mode (already binarized: converts with zero error).

            On the model: `study MODEL.onnx --sweep-average B --eval X.npy [--calibrate C.npy]` converts the \
            model once per P on the grid with average B (every Conv/Gemm/MatMul weight but the first weighted \
            layer's binarized with that P, middle-out masks, --scale scales; each conversion calibrated on C \
            first when given) and measures it against the float model on the evaluation inputs X (a .npy file \
            or folder, never the calibration inputs): top-1 agreement, cosine, SQNR and the weight error. \
            --report FILE.html adds heat maps over the simplex of the three widths' fractions.

            Example (the paper's Figure 2a, HBB.md section 4):
              mbconvert study --synthetic normal:1000000:0 --bits 1,2,3,4 --mix 9/1/0,9/0/1,7/3/0,7/2/1,5/5/0,6/2/2,5/3/2,4/4/2,4/3/3 --method middle-out,top-down,bottom-up,random
            Example (P at a fixed average, on the model):
              mbconvert study model.onnx --sweep-average 1.4,2.0 --eval eval.npy --calibrate cal.npy --scale channel --report sweep.html
            """
    )

    @Argument(help: "A .npy file, or an .onnx model with --tensor or --all (or with --eval: the model sweep).")
    var input: String?

    @Option(help: "A weight of the .onnx model (repeatable).")
    var tensor: [String] = []

    @Flag(help: "Every weight of the .onnx model.")
    var all = false

    @Option(help: "A synthetic tensor KIND:COUNT:SEED (normal, laplace, uniform; COUNT or dimensions like 64x576).",
            transform: StudyParse.synthetic)
    var synthetic: FloatTensor?

    @Option(help: "Homogeneous bit counts, e.g. 1,2,3,4.", transform: StudyParse.bitList)
    var bits: [Int]?

    @Option(help: "Mixes: tenths over bits 1,2,3,... like 7/2/1 (comma-separated list), or FRACTIONS@BITS like 0.6,0.3,0.1@2,3,4 (repeatable).",
            transform: StudyParse.mixes)
    var mix: [[BitDistribution]] = []

    @Option(help: "Average bits only: search the 0.05 grid for the best distribution with this average (e.g. 1.4; comma-separated list).",
            transform: StudyParse.averages)
    var average: [Double]?

    @Option(help: "List every distribution on the 0.05 grid with this average and its error.", transform: StudyParse.averages)
    var sweepAverage: [Double]?

    @Option(help: "Bit widths the --average and --sweep-average grids distribute over (default: 1,2,3).", transform: StudyParse.bitList)
    var gridBits: [Int]?

    @Option(help: "Evaluation inputs (.npy file or folder): sweep --sweep-average on the whole model, measured against the float model.")
    var eval: String?

    @Option(help: "Calibration inputs for the model sweep (.npy file or folder): each conversion is calibrated first.")
    var calibrate: String?

    @OptionGroup(title: "Images (when --eval or --calibrate is a folder of PNG/JPEG images)") var images: ImageOptions

    @Option(help: "Also write the model sweep as an HTML page (simplex heat maps, charts and tables per average).")
    var report: String?

    @Option(help: "Threads of the model sweep's conversions and runs (default: every core).")
    var threads: Int?

    @Option(help: "Mask methods, comma-separated.")
    var method = CommaSeparated<MaskMethod>([.middleOut])

    @Option(help: "Scales: tensor (one per level, the paper's) or channel (one per level per slice along --channel-axis).")
    var scale = ScaleGranularity.tensor

    @Option(help: "The output-channel axis for --scale channel.")
    var channelAxis = 0

    @Flag(help: "Also report the error after a least-squares refit of the level scales.")
    var refit = false

    @Flag(help: "Also report the error after the alternating refit (least-squares scales and nearest sign patterns, alternated; policy 'refit: alternating').")
    var alternatingRefit = false

    @Option(help: "Seed of the random mask method.")
    var seed: UInt64 = 0

    @OptionGroup var output: ReportOptions

    @Flag(help: "Print the report as CSV instead of text.")
    var csv = false

    func validate() throws {
        let isONNX = input?.lowercased().hasSuffix(".onnx") ?? false
        guard (input == nil) != (synthetic == nil) else {
            throw ValidationError("give exactly one source: a .npy or .onnx file, or --synthetic")
        }
        if eval != nil || calibrate != nil || report != nil || threads != nil {
            guard isONNX, eval != nil else { throw ValidationError("--eval, --calibrate, --report and --threads sweep an .onnx model: give MODEL.onnx --sweep-average B --eval X.npy") }
            guard sweepAverage != nil, bits == nil, mix.isEmpty, average == nil, !all, tensor.isEmpty else {
                throw ValidationError("the model sweep (--eval) takes --sweep-average B (and --grid-bits, --scale); not --bits, --mix, --average, --tensor or --all")
            }
            guard method.values == [.middleOut], !refit, !alternatingRefit else {
                throw ValidationError("the model sweep converts with the policy's defaults: middle-out masks, no refit")
            }
            guard !csv else { throw ValidationError("the model sweep prints text or --json") }
            if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
            return
        }
        if isONNX {
            guard all != !tensor.isEmpty else { throw ValidationError("with an .onnx model give --tensor NAME (repeatable) or --all") }
        } else if all || !tensor.isEmpty {
            throw ValidationError("--tensor and --all select weights of an .onnx model")
        }
        if output.json && csv { throw ValidationError("--json and --csv exclude each other") }
    }

    /// The settings; the defaults (1-4 bits and 7/2/1) when none is given.
    var options: StudyOptions {
        var o = StudyOptions()
        o.bits = bits ?? []
        o.mixes = mix.flatMap { $0 }
        o.averages = average ?? []
        o.sweepAverages = sweepAverage ?? []
        if let gridBits { o.gridBits = gridBits }
        o.methods = method.values
        o.scale = ScaleMode(scale, channelAxis: channelAxis)
        o.refit = refit
        o.alternatingRefit = alternatingRefit
        o.seed = seed
        if o.isEmpty {
            o.bits = [1, 2, 3, 4]
            o.mixes = [try! BitDistribution.tenths([7, 2, 1])]
        }
        return o
    }

    func run() throws {
        if let eval, let input {
            try sweepModel(input, eval: eval)
            return
        }
        let text = try CLIErrors.reporting { () throws -> String in
            let tensors: [FloatTensor]
            if let synthetic {
                tensors = [synthetic]
            } else if let input, input.lowercased().hasSuffix(".onnx") {
                tensors = try StudyParse.onnxTensors(path: input, names: tensor, all: all)
            } else {
                tensors = [try StudyParse.npyTensor(path: input!)]
            }
            let report = try Study.run(tensors, options)
            return self.output.json ? try report.renderJSON() : csv ? report.renderCSV() : report.renderText()
        }
        print(text, terminator: "")
    }

    /// `study MODEL.onnx --sweep-average B --eval X`: the whole model per P (MBTools' ModelSweep).
    func sweepModel(_ model: String, eval: String) throws {
        var options = ModelSweep.Options()
        options.averages = sweepAverage ?? []
        if let gridBits { options.bits = gridBits }
        options.scale = scale.rawValue
        options.calibrate = calibrate
        options.images = images.preprocessing
        if let threads { options.threads = threads }
        let meter = ProgressMeter(label: "sweep", style: .forStream(quiet: output.json))
        let text = try CLIErrors.reporting { () throws -> String in
            let result = try ModelSweep.run(model: model, eval: eval, options: options) { done, total, b in
                meter.update(done: done, total: total, detail: "P at average \(b)")
            }
            meter.finish()
            if let report {
                try SweepReport.render(title: "P at a fixed average: \((model as NSString).lastPathComponent)", result, units: options.units)
                    .write(toFile: report, atomically: true, encoding: .utf8)
            }
            return output.json ? try result.renderJSON() : result.renderText()
        }
        print(text, terminator: "")
    }
}
