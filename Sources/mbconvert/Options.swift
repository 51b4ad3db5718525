import ArgumentParser
import Foundation
import MBConvert
import MBImage

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

/// How a folder of PNG/JPEG images becomes model inputs (`--calibrate` and `study --eval` on an
/// image folder): MBImage's declared preprocessing, one option per step.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("image-resize"),
            help: ArgumentHelp("Resize images: the shorter side to N (the other in proportion), or exactly HxW (height x width). Bilinear, half-pixel centres.",
                               valueName: "n|HxW"),
            transform: { text throws in try ImagePreprocessing.Parse.resize(text) })
    var resize: ImagePreprocessing.Resize?

    @Option(name: .customLong("image-crop"), help: ArgumentHelp("Then the centred HxW window (or NxN).", valueName: "HxW"),
            transform: { text throws in try ImagePreprocessing.Parse.size(text) })
    var crop: ImagePreprocessing.Size?

    @Option(name: .customLong("image-channels"), help: "Channel order fed to the model (default: rgb).")
    var channels: ImagePreprocessing.Channels?

    @Option(name: .customLong("image-scale"), help: ArgumentHelp("Pixels scaled to [0, 1] (1, the default) or [0, 255] (255).", valueName: "1|255"),
            transform: { text throws in try ImagePreprocessing.Parse.range(text) })
    var scale: Double?

    @Option(name: .customLong("image-mean"), help: ArgumentHelp("Subtracted after scaling: one value, or one per channel in the fed order (e.g. 0.485,0.456,0.406).", valueName: "m[,m,m]"),
            transform: { text throws in try ImagePreprocessing.Parse.values(text) })
    var mean: [Double]?

    @Option(name: .customLong("image-std"), help: ArgumentHelp("Then divided by: one value, or one per channel (e.g. 0.229,0.224,0.225).", valueName: "s[,s,s]"),
            transform: { text throws in try ImagePreprocessing.Parse.values(text) })
    var std: [Double]?

    @Option(name: .customLong("image-layout"), help: "Layout of each entry: nchw (channels, height, width; the default) or nhwc.")
    var layout: ImagePreprocessing.Layout?

    /// The declared preprocessing, or nil when no option is given (then the policy's `images:`
    /// or the defaults apply).
    var preprocessing: ImagePreprocessing? {
        guard resize != nil || crop != nil || channels != nil || scale != nil || mean != nil || std != nil || layout != nil else { return nil }
        var p = ImagePreprocessing()
        p.resize = resize ?? .none
        p.crop = crop
        p.channels = channels ?? .rgb
        p.range = scale ?? 1
        p.mean = mean ?? []
        p.std = std ?? []
        p.layout = layout ?? .nchw
        return p
    }

    func validate() throws {
        if let problem = preprocessing?.problem { throw ValidationError("image preprocessing: \(problem)") }
    }
}

extension ImagePreprocessing.Channels: ExpressibleByArgument {}
extension ImagePreprocessing.Layout: ExpressibleByArgument {}
