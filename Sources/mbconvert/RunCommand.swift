import ArgumentParser
import MBConvert
import MBTools
import MBRuntime

extension MBModel.Options.Weights: ExpressibleByArgument {}
extension MBModel.Options.ConvTables: ExpressibleByArgument {}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on .npy inputs with mbconvert's runtime.",
        discussion: "Prints each output's shape and a summary (min, max, mean; argmax for 2-D outputs), writes the outputs as .npy files with --output-dir, and times --repeats further runs (median and min latency)."
    )

    @Argument(help: "The model file (.mbm or .onnx).")
    var model: String

    @Option(name: .customLong("input"), help: "NAME=file.npy for each model input (a bare path when the model has one input).")
    var inputs: [String] = []

    @Option(help: "Folder for the outputs as .npy files (one per output, named after it).")
    var outputDir: String?

    // `--repeat` is the name this option had first; both spellings stay accepted.
    @Option(name: [.customLong("repeats"), .customLong("repeat")], help: "Time this many further runs and print median and min latency.")
    var repeats = 0

    @OptionGroup var runtime: RuntimeOptions

    @Flag(help: "With --repeats: print the time per operator type and the slowest nodes (each node's median over the runs), and how each binarized weight runs.")
    var profile = false

    @Option(help: "With --profile: how many of the slowest nodes to print (0: every node, in graph order).")
    var profileNodes = 10

    @Option(help: "How binarized weights run: auto (per layer the faster form, measured at load), expanded (float kernels on the stored values) or packed (kept at about their stored size).")
    var weights: MBModel.Options.Weights = .auto

    @Option(help: "Lookup tables for binarized Convs that run on tables: float (exact to float rounding) or int8 (inputs quantized per table: faster, lossy; with --weights packed every Conv that fits runs on them).")
    var convTables: MBModel.Options.ConvTables = .float

    @Flag(help: "Skip the load-time graph optimizer (run the graph as written, for comparison).")
    var noOptimize = false

    func validate() throws {
        guard repeats >= 0 else { throw ValidationError("--repeats must be >= 0") }
        guard profileNodes >= 0 else { throw ValidationError("--profile-nodes must be >= 0") }
    }

    func run() throws {
        let report = try CLIErrors.reporting {
            var options = RunModel.Options(inputs: inputs, outputDirectory: outputDir, repeats: repeats, threads: runtime.threads)
            options.profile = profile
            options.profileNodes = profileNodes
            options.weights = weights
            options.optimize = !noOptimize
            options.convTables = convTables
            return try RunModel.run(modelPath: model, options: options)
        }
        print(report, terminator: "")
    }
}
