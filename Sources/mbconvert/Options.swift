import ArgumentParser
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

/// MBCore's vocabulary as option values: ArgumentParser lists the choices in `--help` and
/// rejects anything else before the command runs.
extension ScaleGranularity: ExpressibleByArgument {}
