import ArgumentParser

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe an .onnx model: graph, operators, weights and sizes."
    )

    @Argument(help: "The model file (.onnx).")
    var model: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        throw ValidationError("not yet")
    }
}
