import ArgumentParser

/// Benchmarks: each subcommand measures one thing against a baseline run in the same
/// invocation and prints the ratio. Not tests: nothing here asserts; it reports.
@main
struct MBBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbbench",
        abstract: "mbconvert's benchmarks (build with -c release).",
        subcommands: [
            ImportBench.self,
            ImportOnce.self,
            RunBench.self,
            RunOnce.self,
            WeightsBench.self,
            ConvBench.self,
            LutConvBench.self,
            BinarizeBench.self,
            BitPlaneBench.self,
            AlexNetBitPlaneBench.self,
            ConvertBench.self,
            CalibrationBench.self,
            FrontierBench.self,
            MaskEntropyBench.self,
            SweepAverageBench.self,
            LargeModelCommand.self,
        ]
    )
}
