import Foundation

/// The page of a model sweep at fixed averages (`study --sweep-average B --eval X --report`,
/// `mbbench sweep-average --report`): for three widths, heat maps over the simplex of their
/// fractions (top-1 agreement and weight error of every measured P, the fixed averages as lines);
/// per average B, bar charts of top-1 agreement and weight error per P (grid order) and a table.
public enum SweepReport {
    public static func render(title: String, _ result: ModelSweep.Result, units: Int) -> String {
        var body = "<h1>\(HTML.escape(title))</h1>\n<p class=\"note\">\(HTML.escape(result.note))</p>\n"
        let widths = result.bits.map { "\($0)" }.joined(separator: "/")
        if result.bits.count == 3 {
            let points = result.sweeps.flatMap(\.points)
            let averages = result.sweeps.map(\.average)
            body += "<h2>Over the simplex of \(widths)-bit fractions</h2>\n"
            body += "<p class=\"note\">Every measured P at its place in the triangle (corners: all weights at one width); "
                + "a fixed average is a straight line across it. Blank: not measured (give more averages to fill the triangle).</p>\n"
            body += SVGSimplexHeatMap(title: "Top-1 agreement with the float model per P", legend: "top-1 agreement (%)", bits: result.bits,
                                      cells: points.map { .init(fractions: $0.fractions, value: 100 * $0.top1, text: String(format: "%.1f", 100 * $0.top1)) },
                                      units: units, averages: averages, higherIsBetter: true, id: "heat-top1").render()
            body += SVGSimplexHeatMap(title: "Weight error per P", legend: "weight error ‖W − Ŵ‖ / ‖W‖ (no unit)", bits: result.bits,
                                      cells: points.map { .init(fractions: $0.fractions, value: $0.weightError, text: String(format: "%.3f", $0.weightError)) },
                                      units: units, averages: averages, higherIsBetter: false, id: "heat-error").render()
        }
        for sweep in result.sweeps {
            let points = sweep.points
            body += "<h2>Average \(String(format: "%.2f", sweep.average)) bits: \(points.count) distributions P</h2>\n"
            body += SVGBarChart(title: "Top-1 agreement with the float model, per P (\(widths)-bit fractions)", axis: "top-1 agreement (%)",
                                rows: points.map { .init(label: $0.mix, parts: [100 * $0.top1], valueText: String(format: "%.1f %%", 100 * $0.top1)) }).render()
            body += SVGBarChart(title: "Weight error per P", axis: "mean normalized weight error ‖W − Ŵ‖ / ‖W‖ (no unit)",
                                rows: points.map { .init(label: $0.mix, parts: [$0.weightError], valueText: String(format: "%.4f", $0.weightError)) },
                                series: [("weight error", "#c0504d")]).render()
            body += HTMLTable(header: ["P (\(widths)-bit)", "top-1", "cosine", "SQNR (dB)", "weight error"], numeric: [1, 2, 3, 4], rows: points.map { p in
                [.text(p.mix), .number(p.top1, String(format: "%.1f %%", 100 * p.top1)), .number(p.cosine, String(format: "%.4f", p.cosine)),
                 .number(p.sqnrDB, String(format: "%.2f", p.sqnrDB)), .number(p.weightError, String(format: "%.4f", p.weightError))]
            }).render()
        }
        return HTML.page(title: title, body: body)
    }
}
