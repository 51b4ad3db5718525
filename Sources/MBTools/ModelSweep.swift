import Foundation
import MBBinarize
import MBConvert
import MBCore
import MBImage
import MBRuntime

/// P at a fixed average, answered on the model (`mbconvert study model.onnx --sweep-average B
/// --eval X`, `mbbench sweep-average`): for every distribution P on the grid with average B,
/// every Conv/Gemm/MatMul weight but the first weighted layer's is binarized with that same P,
/// and the whole model is measured against the float model on the evaluation inputs: top-1
/// agreement, cosine and SQNR of the first output, and the weight error of the binarized layers.
public enum ModelSweep {
    public struct Options: Sendable {
        /// The averages B swept.
        public var averages: [Double] = [1.4, 2.0]
        /// The bit widths P distributes over (ascending).
        public var bits: [Int] = [1, 2, 3]
        /// Grid units per 1 (20: fractions are multiples of 0.05).
        public var units = 20
        /// Scale granularity of every binarized layer ("tensor" or "channel", as the policy says).
        public var scale = "tensor"
        /// Calibration inputs: every conversion is corrected on them first (`--calibrate`).
        public var calibrate: String?
        /// How folders of PNG/JPEG images (evaluation or calibration) become entries.
        public var images: ImagePreprocessing?
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        public init() {}
    }

    /// One P of a sweep, measured on the model.
    public struct Point: Sendable, Codable {
        /// The fraction of each width in `Options.bits` (zeros included).
        public var fractions: [Double]
        public var top1: Double
        public var cosine: Double
        public var sqnrDB: Double
        /// Mean normalized weight error ‖W − Ŵ‖ / ‖W‖ over the binarized layers, weighted by their sizes.
        public var weightError: Double

        /// P as "0.10/0.80/0.10".
        public var mix: String { fractions.map { String(format: "%.2f", $0) }.joined(separator: "/") }
    }

    public struct Sweep: Sendable, Codable {
        public var average: Double
        /// In grid order (the first width's fraction rising).
        public var points: [Point]
    }

    public struct Result: Sendable, Codable {
        public var model: String
        public var bits: [Int]
        /// How the numbers were made, in one line (inputs, what stays float, scales, calibration).
        public var note: String
        public var sweeps: [Sweep]
    }

    /// Sweeps every average in `options.averages`; `progress` hears each P as it is done
    /// (P done, P total, the average B being swept).
    public static func run(model modelPath: String, eval evalPath: String, options: Options,
                           progress: ((Int, Int, Double) -> Void)? = nil) throws -> Result {
        let grids = try options.averages.map { b in
            do { return try AverageSearch.grid(average: b, bits: options.bits, units: options.units) } catch {
                throw ConversionError("--sweep-average \(b): \(error)")
            }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-sweep-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let float = try ModelLoading.load(path: modelPath)
        let feeds = try Calibration.loadInputs(evalPath, model: float, images: options.images ?? ImagePreprocessing())
        let reference = try float.makeSession(.init(threads: options.threads)).run(feeds)
        guard let output = float.outputs.first?.name, let expected = reference[output] else {
            throw ConversionError("\(modelPath): the model has no output to compare")
        }
        let entries = feeds.values.first?.shape.first ?? 0
        let note = "\((modelPath as NSString).lastPathComponent): \(entries) evaluation inputs (\((evalPath as NSString).lastPathComponent)); "
            + "first weighted layer float32, every other Conv/Gemm/MatMul the same P, middle-out masks, \(options.scale) scales"
            + (options.calibrate.map { ", calibrated on \(($0 as NSString).lastPathComponent)" } ?? ", uncalibrated")
        let total = grids.reduce(0) { $0 + $1.count }
        var done = 0
        var sweeps: [Sweep] = []
        for (b, grid) in zip(options.averages, grids) {
            var points: [Point] = []
            for p in grid {
                let mix = p.entries.filter { $0.fraction > 0 }.map { String(format: "%d: %.4f", $0.bits, $0.fraction) }.joined(separator: ", ")
                let policy = dir + "/p.txt", out = dir + "/m.mbm"
                try """
                    version: 1
                    rules:
                      - match: {position: first}
                        keep: float32
                      - match: {op: [Conv, Gemm, MatMul]}
                        mix: {\(mix)}
                        scale: \(options.scale)

                    """.write(toFile: policy, atomically: true, encoding: .utf8)
                var conversion = Conversion.Options(force: true)
                conversion.threads = options.threads
                conversion.calibrate = options.calibrate
                conversion.images = options.images
                let report = try Conversion.run(model: modelPath, policy: policy, output: out, options: conversion)
                let y = try MBModel(contentsOf: URL(fileURLWithPath: out)).makeSession(.init(threads: options.threads)).run(feeds)
                guard let got = y[output] else { throw ConversionError("\(out): no output '\(output)'") }
                let check = Verify.compare(output, expected, got)
                let binarized = report.layers.filter { $0.encoding == "binarized" }
                let weights = binarized.reduce(0) { $0 + $1.elements }
                let error = binarized.reduce(0.0) { $0 + ($1.normalizedError ?? 0) * Double($1.elements) } / Double(max(1, weights))
                points.append(Point(fractions: p.entries.map(\.fraction), top1: check.top1Agreement ?? 0, cosine: check.cosine,
                                    sqnrDB: check.sqnrDB, weightError: error))
                done += 1
                progress?(done, total, b)
            }
            sweeps.append(Sweep(average: b, points: points))
        }
        return Result(model: modelPath, bits: options.bits, note: note, sweeps: sweeps)
    }
}

extension ModelSweep.Result {
    /// Per average, a table sorted by top-1 agreement, then cosine (best first).
    public func renderText() -> String {
        var s = note + "\n"
        for sweep in sweeps {
            let rows = sweep.points.sorted { ($0.top1, $0.cosine) > ($1.top1, $1.cosine) }
            s += "\nB = \(formatAverage(sweep.average)): \(rows.count) distributions P over widths \(bits.map(String.init).joined(separator: ","))\n"
            let header = ["P (" + bits.map { "\($0)-bit" }.joined(separator: "/") + ")", "top-1", "cosine", "SQNR dB", "weight error"]
            s += table(header: header, rows: rows.map { r in
                [r.mix, String(format: "%.1f%%", 100 * r.top1), String(format: "%.4f", r.cosine), String(format: "%.2f", r.sqnrDB),
                 String(format: "%.4f", r.weightError)]
            }, rightAligned: [1, 2, 3, 4])
        }
        return s
    }

    public func renderJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }
}
