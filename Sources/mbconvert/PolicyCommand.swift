import ArgumentParser
import Foundation
import MBConvert

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files (which weights get which bits).",
        discussion: "The format is described in Schemas/policy.md; examples are in Examples/policies/.",
        subcommands: [PolicyCheckCommand.self]
    )
}

struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a policy file and, with a model, show what it decides for every weight.",
        discussion: """
            Every problem in the file is reported at once on stderr as FILE:LINE:COLUMN: message. With a \
            model, prints for every weight (and every other tensor a rule names) the rule that governs it, \
            its P, average bits, predicted bits per weight and bytes, and the model's totals. A dry run: \
            nothing is binarized except seeded samples for 'average' rules and a 'target'. Exit status 1 \
            when there are errors; a rule that matches no tensor is a warning, or an error with --strict.
            """
    )

    @Argument(help: "The policy file.")
    var policy: String

    @Argument(help: "A model (.onnx) to resolve the policy against.")
    var model: String?

    @Flag(help: "Treat a rule that matches no tensor as an error.")
    var strict = false

    @OptionGroup var output: ReportOptions

    func run() throws {
        let report = try CLIErrors.reporting {
            try PolicyCheck.run(policy: policy, model: model, options: .init(strict: strict))
        }
        if output.json {
            print(try Inspect.json(report), terminator: "")
        } else {
            FileHandle.standardError.write(Data(report.diagnosticsText.utf8))
            print(report.renderText(), terminator: "")
        }
        if report.errorCount > 0 { throw ExitCode(1) }
    }
}
