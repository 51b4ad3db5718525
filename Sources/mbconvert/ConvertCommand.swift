import ArgumentParser
import Foundation
import MBConvert
import MBTools

/// The default command: `mbconvert model.onnx policy.txt [-o model.mbm]`.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Binarize a model's weights as a policy says and write one .mbm file (the default command).",
        discussion: """
            Imports the ONNX model, finds its weights (initializers, Constant nodes, external data, and \
            weights computed by constant subgraphs such as ConstantOfShape, folded here), resolves the \
            policy, binarizes the tensors in parallel and writes the .mbm atomically (a temporary file, \
            then a rename; nothing is left behind on failure or Ctrl-C). Prints a per-layer table and \
            totals; --json writes the same report as JSON.
            """
    )

    @Argument(help: "The model (.onnx).")
    var model: String

    @Argument(help: "The policy file (see Schemas/policy.md).")
    var policy: String

    @Option(name: [.short, .customLong("output")], help: "Where to write the .mbm (default: the model's name with .mbm).")
    var output: String?

    @Option(help: "Also write the report as JSON to this file.")
    var json: String?

    @Option(help: ArgumentHelp("Also write a self-contained HTML report (sizes, every layer, charts, the policy) to this file.", valueName: "file.html"))
    var report: String?

    @OptionGroup var overwrite: OverwriteOptions

    @Flag(help: "Treat a policy rule that matches no tensor as an error.")
    var strict = false

    @Flag(help: "Print nothing but errors.")
    var quiet = false

    @Option(help: "Worker threads for binarization (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("Calibration inputs: a .npy file, a folder of .npy files (<input name>.npy or input_N.npy per input), or a folder of PNG/JPEG images.",
                               discussion: "Each binarized layer's output channels are corrected to the float model's mean and variance on these inputs. Images (one-input models) are decoded with libpng/libjpeg-turbo and preprocessed as the --image-* options declare: resize, center crop, channel order, scale, mean/std, layout, in that order.",
                               valueName: "path"))
    var calibrate: String?

    @OptionGroup(title: "Calibration images") var images: ImageOptions

    @Option(help: ArgumentHelp("Calibrate on this many entries at a time (default: all in one batch).",
                               discussion: "Bounded memory for any number of calibration entries, the same corrections as one batch; one streamed pass over the data per level of layers, with progress and ETA on stderr. Not with 'fit: output', which needs every entry at once.",
                               valueName: "n"))
    var calibrateBatch: Int?

    @Option(help: ArgumentHelp("Memory for the tensors being converted: bytes, or a size with K, M, G or T (default: what the largest tensor needs, at least 64M, at most half of physical memory).",
                               discussion: "Tensors are read through the memory map, converted and written one at a time (as many in parallel as fit). A budget below what the largest tensor needs is an error that names the tensor and the size it needs. With --calibrate (also with --calibrate-batch, and for allocate: sensitivity) a model that does not fit runs in segments whose weights and values do, each weight converted once and kept in a scratch file beside the output; fit: output holds every layer.",
                               valueName: "size"))
    var maxMemory: String?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1") }
        if let calibrateBatch, calibrateBatch < 1 { throw ValidationError("--calibrate-batch must be >= 1") }
        if calibrateBatch != nil, calibrate == nil { throw ValidationError("--calibrate-batch needs --calibrate PATH") }
        if let maxMemory, MemoryBudget.parse(maxMemory) == nil {
            throw ValidationError("--max-memory '\(maxMemory)' is not a size (examples: 2G, 512M, 1500000000)")
        }
    }

    func run() throws {
        let out = output ?? Conversion.defaultOutput(for: model)
        var options = Conversion.Options(force: overwrite.force, strict: strict)
        options.calibrate = calibrate
        options.images = images.preprocessing
        options.calibrationBatch = calibrateBatch
        if let threads { options.threads = threads }
        let meter = ProgressMeter(label: "calibrating", style: .forStream(quiet: quiet), unit: nil)
        options.calibrationProgress = { meter.update(done: $0.done, total: $0.total, detail: "pass \($0.pass) of \($0.passes)") }
        options.maxMemory = maxMemory.flatMap(MemoryBudget.parse)
        // Source bytes done of the total with an ETA, on a terminal only (MBTools' ProgressMeter).
        let bar = ProgressMeter(label: "converting", style: !quiet && isatty(STDERR_FILENO) == 1 ? .terminal : .silent, unit: formatBytes)
        InterruptCleanup.install(removingPartialFilesFor: out)
        let progress: @Sendable (Conversion.Progress) -> Void = { p in
            bar.update(done: p.sourceBytesDone, total: p.sourceBytesTotal, detail: "\(p.done)/\(p.total) tensors  \(p.tensor)")
        }
        let report = try CLIErrors.reporting {
            try Conversion.run(model: model, policy: policy, output: out, options: options, progress: progress)
        }
        bar.finish()
        meter.finish()
        if let json {
            try Inspect.json(report).write(toFile: json, atomically: true, encoding: .utf8)
        }
        if let path = self.report {
            try CLIErrors.reporting { try HTMLReport.write(.init(conversion: report, storage: try StorageBreakdown.read(path: out)), to: path) }
        }
        if !quiet { print(report.renderText(), terminator: "") }
    }
}

/// On Ctrl-C or SIGTERM, removes the writer's temporary file before exiting, so an interrupted
/// conversion leaves nothing behind (the real output only appears by rename when complete).
enum InterruptCleanup {
    /// A C string made before any signal can arrive: the handler only calls unlink and raise,
    /// which are async-signal-safe.
    nonisolated(unsafe) static var partialPath: UnsafeMutablePointer<CChar>?

    static func install(removingPartialFilesFor output: String) {
        partialPath = strdup(output + ".partial-\(getpid())")
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if let p = InterruptCleanup.partialPath { unlink(p) }
                signal(s, SIG_DFL)
                raise(s)
            }
        }
    }
}
