import ArgumentParser
import MBConvert
import MBRuntime
import MBTools

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Per-layer time of a converted model with binarized weights expanded and packed (bit planes).",
        discussion: "Runs the model in both weight modes on the same inputs (seeded uniform [0, 1) values unless --input is given), prints each node's median time per mode, the weights' resident bytes and the outputs' largest difference. Build with -c release for meaningful numbers."
    )

    @Argument(help: "The model file (.mbm or .onnx).")
    var model: String

    @Option(name: .customLong("input"), help: "NAME=file.npy for each model input (default: seeded random values).")
    var inputs: [String] = []

    @Option(help: "Timed runs per mode (medians reported).")
    var repeats = 10

    @Option(help: "Lookup tables for the packed mode's binarized Convs: float, or int8 (every Conv that fits runs on int8 tables: the per-layer table time).")
    var convTables: MBModel.Options.ConvTables = .float

    @Option(help: "The mode timed against expanded: packed, or auto (per layer the faster form, measured at load).")
    var weights: MBModel.Options.Weights = .packed

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
    }

    func run() throws {
        let report = try CLIErrors.reporting {
            var options = LayerBench.Options()
            options.inputs = inputs
            options.repeats = repeats
            options.threads = runtime.threads
            options.convTables = convTables
            options.weights = weights
            return try LayerBench.run(modelPath: model, options: options)
        }
        print(report, terminator: "")
    }
}
