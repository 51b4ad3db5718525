import Foundation

/// The page of `mbbench sweep-average --report`: per average B, the model's top-1 agreement and
/// the weight error of every P on the grid, as bar charts (P in the order given) and a table.
public enum SweepReport {
    public struct Point: Sendable {
        /// P as "0.10/0.80/0.10" (fractions of 1, 2, 3... bits).
        public var mix: String
        public var top1: Double
        public var cosine: Double
        public var weightError: Double
        public init(mix: String, top1: Double, cosine: Double, weightError: Double) {
            self.mix = mix
            self.top1 = top1
            self.cosine = cosine
            self.weightError = weightError
        }
    }

    public static func render(title: String, note: String, sweeps: [(average: Double, points: [Point])]) -> String {
        var body = "<h1>\(HTML.escape(title))</h1>\n<p class=\"note\">\(HTML.escape(note))</p>\n"
        for (b, points) in sweeps {
            body += "<h2>Average \(String(format: "%.2f", b)) bits: \(points.count) distributions P</h2>\n"
            body += SVGBarChart(title: "Top-1 agreement with the float model, per P (1/2/3-bit fractions)", axis: "top-1 agreement (%)",
                                rows: points.map { .init(label: $0.mix, parts: [100 * $0.top1], valueText: String(format: "%.1f %%", 100 * $0.top1)) }).render()
            body += SVGBarChart(title: "Weight error per P", axis: "mean normalized weight error ‖W − Ŵ‖ / ‖W‖ (no unit)",
                                rows: points.map { .init(label: $0.mix, parts: [$0.weightError], valueText: String(format: "%.4f", $0.weightError)) },
                                series: [("weight error", "#c0504d")]).render()
            body += HTMLTable(header: ["P", "top-1", "cosine", "weight error"], numeric: [1, 2, 3], rows: points.map { p in
                [.text(p.mix), .number(p.top1, String(format: "%.1f %%", 100 * p.top1)), .number(p.cosine, String(format: "%.4f", p.cosine)),
                 .number(p.weightError, String(format: "%.4f", p.weightError))]
            }).render()
        }
        return HTML.page(title: title, body: body)
    }
}
