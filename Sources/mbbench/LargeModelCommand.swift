import ArgumentParser
import Foundation
import MBConvert
import MBTools

/// Writes a seeded external-data model of a given size (MBTools' `LargeModel`), for measuring
/// conversion at scale with /usr/bin/time: `mbconvert large.onnx policy.txt --max-memory 2G`.
struct LargeModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "large-model",
        abstract: "Write a seeded Gemm chain with about --size of float32 weights in ONNX external data (several files, one with offsets)."
    )

    @Option(help: "Weight bytes to generate: bytes or a size with K, M, G (e.g. 6G).")
    var size = "6G"

    @Option(help: "Layer width: each weight is width x width float32.")
    var width = 8192

    @Option(help: "Weights that get a file of their own; the rest share one file at offsets.")
    var separateFiles = 2

    @Option(help: "Seed of the weights.")
    var seed: UInt64 = 21

    @Option(help: "Folder to write large.onnx and its data files into.")
    var out: String

    func run() throws {
        guard let bytes = MemoryBudget.parse(size) else { throw ValidationError("--size '\(size)' is not a size") }
        let model = LargeModel(layers: LargeModel.layers(forBytes: bytes, width: width), width: width, separateFiles: separateFiles, seed: seed)
        let start = Date()
        let path = try model.write(to: out)
        print("\(path): \(model.layers) layers of \(width)x\(width), \(formatBytes(model.weightBytes)) of weights, written in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
    }
}
