import ArgumentParser
import MBConvert

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: graph, operators, weights and sizes.",
        discussion: "For an .onnx file: IR version, opsets, producer, inputs and outputs, a histogram of op types, every weight tensor (initializer, Constant node or external file) and totals."
    )

    @Argument(help: "The model file (.onnx).")
    var model: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let summary = try CLIErrors.reporting { try Inspect.summarizeONNX(path: model) }
        print(json ? try Inspect.json(summary) : summary.renderText(), terminator: "")
    }
}
