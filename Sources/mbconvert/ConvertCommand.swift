import ArgumentParser
import Foundation
import MBConvert

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

    @OptionGroup var overwrite: OverwriteOptions

    @Flag(help: "Treat a policy rule that matches no tensor as an error.")
    var strict = false

    @Flag(help: "Print nothing but errors.")
    var quiet = false

    @Option(help: "Worker threads for binarization (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("Calibration inputs: a .npy file, or a folder of .npy files (<input name>.npy or input_N.npy per input).",
                               discussion: "Each binarized layer's output channels are corrected to the float model's mean and variance on these inputs.",
                               valueName: "path"))
    var calibrate: String?

    @Option(help: ArgumentHelp("Memory for the tensors being converted: bytes, or a size with K, M, G or T (default: half of physical memory).",
                               discussion: "Tensors are read through the memory map, converted and written one at a time (as many in parallel as fit). A budget below what the largest tensor needs is an error that names the tensor and the size it needs. Conversions with --calibrate hold every layer.",
                               valueName: "size"))
    var maxMemory: String?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1") }
        if let maxMemory, MemoryBudget.parse(maxMemory) == nil {
            throw ValidationError("--max-memory '\(maxMemory)' is not a size (examples: 2G, 512M, 1500000000)")
        }
    }

    func run() throws {
        let out = output ?? Conversion.defaultOutput(for: model)
        var options = Conversion.Options(force: overwrite.force, strict: strict)
        options.calibrate = calibrate
        if let threads { options.threads = threads }
        options.maxMemory = maxMemory.flatMap(MemoryBudget.parse)
        let bar = (!quiet && isatty(STDERR_FILENO) == 1) ? ProgressBar() : nil
        InterruptCleanup.install(removingPartialFilesFor: out)
        var progress: (@Sendable (Conversion.Progress) -> Void)?
        if let bar { progress = { bar.update($0) } }
        let report = try CLIErrors.reporting {
            try Conversion.run(model: model, policy: policy, output: out, options: options, progress: progress)
        }
        bar?.finish()
        if let json {
            try Inspect.json(report).write(toFile: json, atomically: true, encoding: .utf8)
        }
        if !quiet { print(report.renderText(), terminator: "") }
    }
}

/// A one-line progress bar on stderr (only on a terminal): tensors done, source bytes done of
/// the total, and the time left at the byte rate so far.
final class ProgressBar: @unchecked Sendable {
    private let lock = NSLock()
    private let started = Date()

    func update(_ p: Conversion.Progress) {
        lock.lock()
        defer { lock.unlock() }
        let width = 30
        let (done, total) = p.sourceBytesTotal > 0 ? (p.sourceBytesDone, p.sourceBytesTotal) : (p.done, p.total)
        let filled = total == 0 ? width : min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let name = p.tensor.count > 32 ? String(p.tensor.prefix(29)) + "..." : p.tensor
        let bytes = p.sourceBytesTotal > 0 ? " \(formatBytes(p.sourceBytesDone))/\(formatBytes(p.sourceBytesTotal))" : ""
        let elapsed = Date().timeIntervalSince(started)
        let eta = done > 0 && done < total ? " ETA \(Self.duration(elapsed / Double(done) * Double(total - done)))" : ""
        FileHandle.standardError.write(Data("\r[\(bar)] \(p.done)/\(p.total)\(bytes)\(eta)  \(name)\u{1B}[K".utf8))
    }

    /// "4.2 s", "42 s", "3 min 05 s".
    static func duration(_ seconds: Double) -> String {
        if seconds < 10 { return String(format: "%.1f s", seconds) }
        let s = Int(seconds.rounded())
        return s < 60 ? "\(s) s" : String(format: "%d min %02d s", s / 60, s % 60)
    }

    func finish() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
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
