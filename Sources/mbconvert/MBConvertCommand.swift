import ArgumentParser

@main
struct MBConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbconvert",
        abstract: "Make convolutional networks tiny with heterogeneous bitwidth binarization.",
        version: MBConvertVersion.string,
        subcommands: [
            ConvertCommand.self,
            InspectCommand.self,
            PolicyCommand.self,
            StudyCommand.self,
            RunCommand.self,
            ExportONNXCommand.self,
            VerifyCommand.self,
        ],
        defaultSubcommand: ConvertCommand.self
    )
}

enum MBConvertVersion {
    static let string = "0.1.0-dev"
}
