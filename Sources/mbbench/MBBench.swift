import ArgumentParser
#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif

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

    /// Progress lines appear as they are printed, also when stdout is a file or a pipe (where
    /// the C library would otherwise hold them in a 4 KiB block until the run ends).
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        main(nil)
    }
}
