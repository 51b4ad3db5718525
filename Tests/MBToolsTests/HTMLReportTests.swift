import Foundation
import MBConvert
import MBCore
@testable import MBTools
import TestSupport
import Testing

/// The HTML report's text: every section, every layer, the charts, the policy, escaping.
@Suite struct HTMLReportTests {
    @Test func conversionAndVerificationReportsHoldEverySection() throws {
        let root = SharedFixtures.repositoryRoot
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("html-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let out = dir.appendingPathComponent("m.mbm").path
        let conversion = try Conversion.run(model: model, policy: root.appendingPathComponent("Examples/policies/post-training.txt").path, output: out)
        let storage = try StorageBreakdown.read(path: out)
        let html = HTMLReport.render(.init(conversion: conversion, storage: storage))
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.contains("<meta name=\"viewport\""))
        #expect(!html.contains("http://") && !html.contains("https://"), "the page must not load anything")
        for section in ["<h2>Summary</h2>", "<h2>Size</h2>", "<h2>Layers</h2>", "<h2>Policy</h2>", "Where the bytes go",
                        "Stored bits per weight, per layer", "Weight error per layer", "@media print"] {
            #expect(html.contains(section), "missing \(section)")
        }
        for layer in conversion.layers { #expect(html.contains(">\(layer.name)<"), "missing layer \(layer.name)") }
        #expect(html.components(separatedBy: "<svg").count - 1 == 3)
        #expect(html.contains("keep: float32"), "the policy text")
        // Sizes add up to the file: the six parts of the table.
        let parts = storage.tensors.reduce(0) { $0 + $1.signBytes + $1.maskBytes + $1.scaleBytes + $1.rawBytes + $1.otherBytes + $1.codeBytes + $1.tableBytes } + storage.structureBytes
        #expect(parts == storage.fileBytes)
        #expect(storage.tensors.contains { $0.encoding == "binarized" && $0.signBytes > 0 && $0.maskBytes > 0 && $0.scaleBytes > 0 })

        var options = Verify.Options()
        options.random = 4
        options.perLayer = true
        let verification = try Verify.run(onnx: model, mbm: out, options: options)
        let page = HTMLReport.render(.init(storage: storage, verification: verification))
        for section in ["<h2>Verification</h2>", "Which layer broke it", "Output SQNR with only this layer converted (worst first)",
                        "verification report", "output probs"] {
            #expect(page.contains(section), "missing \(section)")
        }
        let worst = try #require(verification.perLayer?.first)
        let firstRow = try #require(page.range(of: "<td>\(worst.tensor)</td><td class=\"n\" data-v=\"\(Double(worst.position))\""))
        #expect(page[firstRow.upperBound...].contains("<h2>Size</h2>"), "the diagnostic comes before the sizes")
        #expect(page.components(separatedBy: "<svg").count - 1 == 5)  // sizes, bits, error, alone, prefix
    }

    @Test func sweepPageChartsEveryP() {
        let points = [ModelSweep.Point(fractions: [0.6, 0.4, 0], top1: 0.715, cosine: 0.74, sqnrDB: 3.1, weightError: 0.3288),
                      ModelSweep.Point(fractions: [0.65, 0.3, 0.05], top1: 0.75, cosine: 0.756, sqnrDB: 3.4, weightError: 0.3034)]
        let result = ModelSweep.Result(model: "m.onnx", bits: [1, 2, 3], note: "model <m>", sweeps: [.init(average: 1.4, points: points)])
        let page = SweepReport.render(title: "P at a fixed average", result, units: 20)
        #expect(page.contains("<h2>Average 1.40 bits: 2 distributions P</h2>") && page.contains("model &lt;m&gt;"))
        #expect(page.components(separatedBy: "<svg").count - 1 == 4)  // two heat maps, two bar charts
        #expect(page.contains(">0.65/0.30/0.05</text>") && page.contains(">75.0 %</text>") && page.contains(">0.3288</text>"))
        #expect(page.contains("top-1 agreement (%)"))
        // The heat maps: one cell per P, the line of B = 1.4, the legend's range, the best P circled.
        #expect(page.components(separatedBy: "class=\"cell\"").count - 1 == 4)
        #expect(page.components(separatedBy: "class=\"average\"").count - 1 == 2 && page.contains(">B = 1.4</text>"))
        #expect(page.contains(">75.0 (better)</text>") && page.contains(">71.5</text>") && page.contains(">0.303 (better)</text>"))
        #expect(page.contains("<title>P 0.65/0.30/0.05 (1-bit/2-bit/3-bit): 75.0</title>"))
        // Two widths: no simplex.
        let two = ModelSweep.Result(model: "m.onnx", bits: [1, 2], note: "", sweeps: [.init(average: 1.5, points: [
            ModelSweep.Point(fractions: [0.5, 0.5], top1: 0.5, cosine: 0.5, sqnrDB: 1, weightError: 0.4)])])
        #expect(!SweepReport.render(title: "t", two, units: 20).contains("class=\"cell\""))
    }

    @Test func simplexPlacesFractionsAndAverageLines() {
        // Corners: 1-bit bottom left, 2-bit top, 3-bit bottom right.
        let h = SVGSimplexHeatMap.height
        let a = SVGSimplexHeatMap.point([1, 0, 0]), b = SVGSimplexHeatMap.point([0, 1, 0]), c = SVGSimplexHeatMap.point([0, 0, 1])
        #expect(a.x == SVGSimplexHeatMap.left && a.y == SVGSimplexHeatMap.top + h)
        #expect(b.x == SVGSimplexHeatMap.left + SVGSimplexHeatMap.side / 2 && b.y == SVGSimplexHeatMap.top)
        #expect(c.x == SVGSimplexHeatMap.left + SVGSimplexHeatMap.side && c.y == a.y)
        // B = 1.4 over 1/2/3 bits runs from 0.8/0/0.2 to 0.6/0.4/0; B = 2.5 from 0/0.5/0.5 to 0.25/0/0.75.
        func close(_ x: [[Double]], _ y: [[Double]]) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { zip($0, $1).allSatisfy { abs($0 - $1) < 1e-12 } }
        }
        #expect(close(SVGSimplexHeatMap.averageLine(1.4, bits: [1, 2, 3]), [[0.8, 0, 0.2], [0.6, 0.4, 0]]))
        #expect(close(SVGSimplexHeatMap.averageLine(2.5, bits: [1, 2, 3]), [[0, 0.5, 0.5], [0.25, 0, 0.75]]))
        #expect(SVGSimplexHeatMap.averageLine(3.5, bits: [1, 2, 3]).isEmpty)
        #expect(SVGSimplexHeatMap.color(0) == "#440154" && SVGSimplexHeatMap.color(1) == "#fde725")
    }

    @Test func escapesAndTicks() {
        #expect(HTML.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
        #expect(SVGBarChart.ticks(upTo: 7.3) == (2, 8))
        #expect(SVGBarChart.ticks(upTo: 0.042) == (0.01, 0.05))
        #expect(SVGBarChart.ticks(upTo: 0) == (1, 1))
        let svg = SVGBarChart(title: "t <x>", axis: "bits", rows: [.init(label: "conv", parts: [2], valueText: "2.00")]).render()
        #expect(svg.contains("t &lt;x&gt;") && svg.contains(">bits</text>") && svg.contains(">conv</text>") && svg.contains("class=\"bar\""))
    }
}
