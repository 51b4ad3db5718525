import Foundation
import MBConvert
import MBCore
import TestSupport
import Testing

/// `verify --per-layer`: one row per converted layer, worst alone first, and the last prefix
/// (every layer converted, with the recorded calibration) is the converted model itself.
@Suite struct LayerDiagnosticTests {
    @Test func lastPrefixIsTheConvertedModelAndRowsAreWorstFirst() throws {
        let root = SharedFixtures.repositoryRoot
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("per-layer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededGenerator(seed: 21)
        let calib = dir.appendingPathComponent("calib.npy").path, eval = dir.appendingPathComponent("eval.npy").path
        try NPY.write(NPYArray(floats: (0..<(16 * 3 * 32 * 32)).map { _ in Float(rng.nextNormal()) }, shape: [16, 3, 32, 32]), to: calib)
        try NPY.write(NPYArray(floats: (0..<(24 * 3 * 32 * 32)).map { _ in Float(rng.nextNormal()) }, shape: [24, 3, 32, 32]), to: eval)
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let out = dir.appendingPathComponent("m.mbm").path
        var conversion = Conversion.Options()
        conversion.calibrate = calib
        let converted = try Conversion.run(model: model, policy: root.appendingPathComponent("Examples/policies/post-training.txt").path,
                                           output: out, options: conversion)
        var options = Verify.Options()
        options.inputsDirectory = eval
        options.perLayer = true
        let report = try Verify.run(onnx: model, mbm: out, options: options)
        let rows = try #require(report.perLayer)
        // post-training keeps the first layer float32 (not listed), the last float16 (listed), binarizes the rest.
        let converted16 = converted.layers.filter { $0.encoding != "keep float32" }.map(\.name)
        #expect(Set(rows.map(\.tensor)) == Set(converted16), "\(rows.map(\.tensor)) vs \(converted16)")
        #expect(rows.first { $0.tensor == "fc.weight" }?.storedAs == "float16")
        #expect(rows.map(\.alone.sqnrDB) == rows.map(\.alone.sqnrDB).sorted(), "not worst first: \(rows.map(\.alone.sqnrDB))")
        let byPosition = rows.sorted { $0.position < $1.position }
        #expect(byPosition.map(\.position) == Array(1...rows.count))
        #expect(byPosition[0].prefixDropDB == nil && byPosition[0].prefix == byPosition[0].alone)
        let whole = try #require(report.outputs.first)
        let last = try #require(byPosition.last)
        #expect(abs(last.prefix.sqnrDB - whole.sqnrDB) <= 1e-6 * abs(whole.sqnrDB), "last prefix \(last.prefix.sqnrDB) dB, converted model \(whole.sqnrDB) dB")
        #expect(last.prefix.top1Agreement == whole.top1Agreement)
        let text = LayerDiagnostic.renderText(rows)
        #expect(text.contains("alone SQNR dB") && text.contains(rows[0].tensor))
    }
}
