import ArgumentParser
import Foundation
import MBConvert

/// The runtime's options shared by every command that runs a model (`run`, `bench`, `verify`):
/// declared and checked once.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Threads for the runtime and the BLAS.")
    var threads = 1

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be >= 1") }
    }
}

/// How a command that prints a report prints it (`inspect`, `policy check`, `verify`, `study`).
struct ReportOptions: ParsableArguments {
    @Flag(help: "Print the report as JSON instead of text.")
    var json = false
}

/// Commands that write a file (`convert`, `export-onnx`) never replace one unless asked.
struct OverwriteOptions: ParsableArguments {
    @Flag(help: "Replace the output file if it exists.")
    var force = false
}

// MBCore's vocabulary as option values: ArgumentParser lists the choices in `--help` and
// rejects anything else before the command runs.
extension ScaleGranularity: ExpressibleByArgument {}
extension MaskMethod: ExpressibleByArgument {}

/// Several values of one option in one argument, separated by commas (`--method middle-out,random`).
struct CommaSeparated<Element: ExpressibleByArgument & Sendable>: ExpressibleByArgument, Sendable {
    var values: [Element]

    init(_ values: [Element]) { self.values = values }

    init?(argument: String) {
        var out: [Element] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = Element(argument: part.trimmingCharacters(in: .whitespaces)) else { return nil }
            out.append(value)
        }
        values = out
    }

    var defaultValueDescription: String { values.map(\.defaultValueDescription).joined(separator: ",") }
    static var allValueStrings: [String] { Element.allValueStrings }
}
