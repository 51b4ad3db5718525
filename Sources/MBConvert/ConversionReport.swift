import Foundation
import MBCore
import MBFormat

/// What a conversion did, per layer and in total: printed as a table, written with `--json`,
/// and stored (the layers) in the `.mbm` metadata.
public struct ConversionReport: Codable, Sendable {
    public struct MixEntry: Codable, Sendable, Equatable {
        public var bits: Int
        public var fraction: Double
    }

    public struct Layer: Codable, Sendable {
        public var name: String
        public var op: String
        public var node: String
        public var shape: [Int]
        public var rule: String
        /// The element type the weight had in the ONNX model.
        public var sourceElementType: String?
        public var encoding = ""
        public var method: String?
        public var scale: String?
        /// The axis channel scales run along (output channels), for channel scales.
        public var channelAxis: Int?
        public var requestedMix: [MixEntry]?
        public var realizedMix: [MixEntry]?
        public var averageBits: Double = 0
        /// Stored bytes of the tensor's payload (filled from the writer's summary).
        public var storedBytes = 0
        /// Stored bits per weight: signs, mask stream and scales counted.
        public var bitsPerWeight: Double = 0
        public var normalizedError: Double?
        public var sqnrDB: Double?
        public var maxAbsError: Double?
        /// `fit: output` only: ‖X_f·w − X_q·q‖² / ‖X_f·w‖² on the calibration rows, of the
        /// fit's start (the policy's weight-space binarization of its target w', the best float
        /// weights for the binarized upstream; w' = w for the first layer) and of the output fit;
        /// rows used; largest damping λ.
        public var outputErrorWeightFit: Double?
        public var outputError: Double?
        public var calibrationRows: Int?
        public var damping: Double?

        init(name: String, op: String, node: String, shape: [Int], rule: String) {
            self.name = name
            self.op = op
            self.node = node
            self.shape = shape
            self.rule = rule
        }

        public var elements: Int { shape.reduce(1, *) }
    }

    public struct Totals: Codable, Sendable {
        public var onnxBytes: Int
        public var mbmBytes: Int
        /// onnxBytes / mbmBytes.
        public var compression: Double
        public var weights: Int
        public var weightBytes: Int
        /// Stored bits per weight over every weight the policy governed: payload bytes (signs,
        /// masks, scales, kept floats) × 8 / weights.
        public var bitsPerWeight: Double
        /// The whole file (headers, graph, metadata, other tensors) × 8 / weights.
        public var fileBitsPerWeight: Double
        public var binarizedWeights: Int
        public var binarizedBitsPerWeight: Double?
        public var seconds: Double
        /// Calibrated conversions: bytes of the corrections recorded for `verify` (metadata
        /// `calibration.f32`; counted in the whole file, not in the weights' bits).
        public var calibrationRecordBytes: Int?
    }

    public var model: String
    public var policy: String
    public var output: String
    public var onnxBytes: Int
    public var layers: [Layer]
    public var warnings: [String]
    public var totals: Totals?
    /// With --calibrate: each corrected layer.
    public var calibration: [Calibration.LayerCorrection]?
    public var calibrationSeconds: Double?
    /// With `target: {allocate: sensitivity}`: each target layer's probe and allocation.
    public var allocation: [Sensitivity.Layer]?
    public var allocationSeconds: Double?

    init(model: String, policy: String, output: String, onnxBytes: Int, layers: [Layer], warnings: [String]) {
        self.model = model
        self.policy = policy
        self.output = output
        self.onnxBytes = onnxBytes
        self.layers = layers
        self.warnings = warnings
    }

    /// Fills in stored sizes from what the writer wrote.
    mutating func finish(summary: MBMWriter.Summary, seconds: Double) {
        let stored = Dictionary(summary.tensors.map { ($0.name, $0.bytes) }, uniquingKeysWith: { a, _ in a })
        for i in layers.indices {
            let bytes = stored[layers[i].name] ?? layers[i].storedBytes
            layers[i].storedBytes = bytes
            layers[i].bitsPerWeight = layers[i].elements == 0 ? 0 : Double(bytes * 8) / Double(layers[i].elements)
        }
        let weights = layers.reduce(0) { $0 + $1.elements }
        let weightBytes = layers.reduce(0) { $0 + $1.storedBytes }
        let binarized = layers.filter { $0.encoding == "binarized" }
        let binWeights = binarized.reduce(0) { $0 + $1.elements }
        let binBytes = binarized.reduce(0) { $0 + $1.storedBytes }
        totals = Totals(onnxBytes: onnxBytes, mbmBytes: summary.fileBytes,
                        compression: summary.fileBytes == 0 ? 0 : Double(onnxBytes) / Double(summary.fileBytes),
                        weights: weights, weightBytes: weightBytes,
                        bitsPerWeight: weights == 0 ? 0 : Double(weightBytes * 8) / Double(weights),
                        fileBitsPerWeight: weights == 0 ? 0 : Double(summary.fileBytes * 8) / Double(weights),
                        binarizedWeights: binWeights,
                        binarizedBitsPerWeight: binWeights == 0 ? nil : Double(binBytes * 8) / Double(binWeights),
                        seconds: seconds)
    }

    /// The per-layer statistics stored in the `.mbm` metadata.
    func layersJSON() -> String {
        (try? String(decoding: Inspect.jsonEncoder(pretty: false).encode(layers), as: UTF8.self)) ?? "[]"
    }

    public func renderText() -> String {
        var out = ""
        for w in warnings { out += w + "\n" }
        let rows = layers.map { l -> [String] in
            let mix = l.realizedMix.map { m in m.map { String(format: "%d:%.2f", $0.bits, $0.fraction) }.joined(separator: " ") } ?? l.encoding
            return [l.name, l.op, "[" + l.shape.map(String.init).joined(separator: ",") + "]", l.rule, mix,
                    String(format: "%.3f", l.averageBits), String(format: "%.3f", l.bitsPerWeight),
                    l.normalizedError.map { String(format: "%.4f", $0) } ?? "-"]
        }
        out += table(header: ["tensor", "op", "shape", "rule", "realized P", "avg bits", "stored bits/w", "norm. error"],
                     rows: rows, rightAligned: [5, 6, 7])
        if let a = allocation {
            let bits = a.reduce(0.0) { $0 + ($1.averageBits ?? 0) * Double($1.elements) } / Double(max(1, a.reduce(0) { $0 + $1.elements }))
            out += String(format: "\nsensitivity allocation: %d target layers probed on up to %d calibration inputs in %.2f s; %.3f requested bits over them\n",
                          a.count, Sensitivity.maxInputs, allocationSeconds ?? 0, bits)
            out += table(header: ["tensor", "elements", "probe P", "probe w. error", "probe out. error", "sensitivity", "avg bits", "P"], rows: a.map {
                [$0.tensor, String($0.elements), $0.probeMix, String(format: "%.4f", $0.probeWeightError), String(format: "%.3e", $0.probeOutputError),
                 String(format: "%.3e", $0.sensitivity), $0.averageBits.map { String(format: "%.1f", $0) } ?? "-", $0.mix ?? "-"]
            }, rightAligned: [1, 3, 4, 5, 6])
        }
        let fitted = layers.filter { $0.outputError != nil }
        if !fitted.isEmpty {
            out += "\noutput fit: \(fitted.count) layers fitted to the float model's layer outputs (relative output error on the calibration rows)\n"
            out += table(header: ["tensor", "rows", "weight fit of w'", "output fit", "damping λ"], rows: fitted.map {
                [$0.name, String($0.calibrationRows ?? 0), $0.outputErrorWeightFit.map { String(format: "%.4f", $0) } ?? "-",
                 String(format: "%.4f", $0.outputError ?? 0), $0.damping.map { String(format: "%.3g", $0) } ?? "-"]
            }, rightAligned: [1, 2, 3, 4])
        }
        if let c = calibration {
            out += String(format: "\ncalibration: %d layers corrected in %.2f s (output channels matched to the float model's mean and variance)\n",
                          c.count, calibrationSeconds ?? 0)
            out += table(header: ["layer", "output", "channels", "mean |a-1|", "mean |b|/σ", "stored as"], rows: c.map {
                [$0.node, $0.output, String($0.channels), String(format: "%.4f", $0.meanScaleChange), String(format: "%.4f", $0.meanShift), $0.storedAs]
            }, rightAligned: [2, 3, 4])
        }
        if let t = totals {
            out += "\n"
            out += String(format: "%@ → %@: %@ → %@ (%.1fx smaller), %.2f s\n", model, output, formatBytes(t.onnxBytes), formatBytes(t.mbmBytes), t.compression, t.seconds)
            out += String(format: "weights: %d in %d bytes: %.4f bits per weight (signs, masks, scales and kept floats counted); whole file %.4f bits per weight\n",
                          t.weights, t.weightBytes, t.bitsPerWeight, t.fileBitsPerWeight)
            if let b = t.binarizedBitsPerWeight {
                out += String(format: "binarized: %d weights at %.4f bits per weight\n", t.binarizedWeights, b)
            }
            if let r = t.calibrationRecordBytes {
                out += String(format: "calibration record (for verify): %d bytes, %.4f bits per weight (in the whole-file figure)\n",
                              r, t.weights == 0 ? 0 : Double(r * 8) / Double(t.weights))
            }
        }
        return out
    }
}
