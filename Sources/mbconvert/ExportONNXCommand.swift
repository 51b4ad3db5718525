import ArgumentParser
import MBConvert

struct ExportONNXCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-onnx",
        abstract: "Write an .mbm's graph back as ONNX, binarized weights replaced by their exact dequantized values.",
        discussion: "So any ONNX tool (onnxruntime, Netron) can run or show the binarized model."
    )

    @Argument(help: "The converted model (.mbm).")
    var model: String

    @Argument(help: "The ONNX file to write.")
    var output: String

    @OptionGroup var overwrite: OverwriteOptions

    func run() throws {
        try CLIErrors.reporting { try ExportONNX.run(mbm: model, output: output, force: overwrite.force) }
    }
}
