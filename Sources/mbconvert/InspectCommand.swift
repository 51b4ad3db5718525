import ArgumentParser
import MBConvert

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model (.onnx or .mbm): graph, operators, weights and sizes.",
        discussion: """
            For an .onnx file: IR version, opsets, producer, inputs and outputs, a histogram of op types, every \
            weight tensor (initializer, Constant node or external file) and totals.
            For an .mbm file: header, metadata, the embedded policy, every tensor's encoding and stored size \
            (bits per weight with signs, scales and masks counted), and the checksum verdict.
            """
    )

    @Argument(help: "The model file (.onnx or .mbm; told apart by content).")
    var model: String

    @OptionGroup var output: ReportOptions

    @Flag(help: "For .mbm files: skip CRC verification.")
    var noChecksums = false

    func run() throws {
        if Inspect.isMBM(path: model) {
            let summary = try CLIErrors.reporting { try Inspect.summarizeMBM(path: model, verifyChecksums: !noChecksums) }
            print(output.json ? try Inspect.json(summary) : summary.renderText(), terminator: "")
        } else {
            let summary = try CLIErrors.reporting { try Inspect.summarizeONNX(path: model) }
            print(output.json ? try Inspect.json(summary) : summary.renderText(), terminator: "")
        }
    }
}
