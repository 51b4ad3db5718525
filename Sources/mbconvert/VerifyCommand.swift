import ArgumentParser
import Foundation
import MBConvert
import MBTools

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a conversion: file integrity, every weight against a recomputation, outputs against the float model.",
        discussion: """
            Verifies every checksum and the source model's SHA-256; applies the policy stored in the .mbm \
            to the ONNX weights again and requires every stored tensor to be identical (masks, signs, \
            scales); runs the float model and the converted one with mbconvert's runtime on the same \
            inputs and reports per output the max abs error, cosine similarity, SQNR and, for \
            [batch, classes] outputs, top-1 agreement. Exit status 1 when anything fails or a \
            --min-cosine / --min-top1 bar is missed.
            """
    )

    @Argument(help: "The source model (.onnx).")
    var onnx: String

    @Argument(help: "The converted model (.mbm).")
    var mbm: String

    @Option(name: .customLong("input"), help: "An input as NAME=file.npy (repeatable); a batch is one file.")
    var inputs: [String] = []

    @Option(name: [.customLong("inputs"), .customLong("eval")],
            help: "Evaluation inputs: a .npy file, or a folder (<input name>.npy or input_N.npy per input) to compare on; keep them separate from the calibration set.")
    var inputsDirectory: String?

    @Option(help: "Seeded random inputs with this batch size (the default, batch 1).")
    var random: Int?

    @Option(name: .customLong("shape"), help: "Sizes for symbolic input dimensions with --random: NAME=d0,d1,...")
    var shapes: [String] = []

    @Option(help: "Fail when an output's cosine similarity is below this.")
    var minCosine: Double?

    @Option(help: "Fail when a classifier output's top-1 agreement is below this (0...1).")
    var minTop1: Double?

    @Flag(name: .customLong("per-layer"), help: ArgumentHelp("Which layer broke it: each converted layer alone in the float model, then every prefix in graph order, worst first.",
                                                               discussion: "Two runs per layer on the evaluation inputs; the stored tensors are swapped in as they are, with their recorded calibration."))
    var perLayer = false

    @Option(help: ArgumentHelp("Also write a self-contained HTML report (outputs, the per-layer diagnostic, sizes, every layer, the policy) to this file.", valueName: "file.html"))
    var report: String?

    @Option(help: ArgumentHelp("Memory for the tensors being converted again and the models being run: bytes, or a size with K, M, G or T (default: half of physical memory).",
                               discussion: "The recomputed conversion streams as `mbconvert --max-memory` does: each tensor is converted, compared with the stored one (decoded for it alone) and dropped. A model whose weights do not fit runs in segments of consecutive nodes.",
                               valueName: "size"))
    var maxMemory: String?

    @OptionGroup var runtime: RuntimeOptions

    @OptionGroup var output: ReportOptions

    func validate() throws {
        let sources = (inputs.isEmpty ? 0 : 1) + (inputsDirectory == nil ? 0 : 1) + (random == nil ? 0 : 1)
        if sources > 1 { throw ValidationError("give one of --input, --inputs and --random") }
        if let random, random < 1 { throw ValidationError("--random must be at least 1") }
        if let maxMemory, MemoryBudget.parse(maxMemory) == nil {
            throw ValidationError("--max-memory '\(maxMemory)' is not a size (examples: 2G, 512M, 1500000000)")
        }
    }

    func run() throws {
        var options = Verify.Options()
        options.inputs = inputs
        options.inputsDirectory = inputsDirectory
        options.random = random
        options.shapes = shapes
        options.minCosine = minCosine
        options.minTop1 = minTop1
        options.threads = runtime.threads
        options.perLayer = perLayer
        options.maxMemory = maxMemory.flatMap(MemoryBudget.parse)
        let report = try CLIErrors.reporting { try Verify.run(onnx: onnx, mbm: mbm, options: options) }
        print(output.json ? try Inspect.json(report) : report.renderText(), terminator: "")
        if let path = self.report {
            try CLIErrors.reporting { try HTMLReport.write(.init(storage: try StorageBreakdown.read(path: mbm), verification: report), to: path) }
        }
        if !report.passed { throw ExitCode(1) }
    }
}
