import ArgumentParser
import Foundation

/// The float model and its two input sets that the accuracy benchmarks (`calibration`, `frontier`)
/// share: calibration inputs to fit on, evaluation inputs to measure on, never the same file.
struct ClassifierData: ParsableArguments {
    @Option(help: "The float model.")
    var model = "../shared/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"

    @Option(help: "Calibration inputs (.npy file or folder).")
    var calibration = "../shared/models/ch_ppocr_mobile_v2.0_cls_infer/calib_x.npy"

    @Option(help: "Evaluation inputs (.npy file or folder), never the calibration inputs.")
    var eval = "../shared/models/ch_ppocr_mobile_v2.0_cls_infer/eval_x.npy"

    @Option(help: "Threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard URL(fileURLWithPath: calibration).standardizedFileURL != URL(fileURLWithPath: eval).standardizedFileURL else {
            throw ValidationError("the calibration and evaluation inputs must differ")
        }
    }
}
