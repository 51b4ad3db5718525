import Foundation

/// A horizontal bar chart as inline SVG: one bar (or one stack of parts) per labelled row, an
/// x axis with round ticks, its unit and a title. Bars start at zero; negative values are
/// drawn as zero-length and their value still printed.
struct SVGBarChart {
    struct Row {
        var label: String
        /// Stacked parts, in `series` order (one part for a plain bar).
        var parts: [Double]
        /// The printed value at the bar's end.
        var valueText: String
    }

    var title: String
    /// The x axis' caption with its unit: "stored bits per weight", "SQNR (dB)".
    var axis: String
    var rows: [Row]
    /// Names and colours of the stacked parts (a legend when more than one).
    var series: [(name: String, color: String)] = [("value", "#3b6ea5")]
    /// A reference line (e.g. the float model's size or a target), with its caption.
    var marker: (value: Double, label: String)?

    static let width = 760.0, labelWidth = 210.0, rowHeight = 18.0, right = 70.0

    func render() -> String {
        let top = 28.0 + (series.count > 1 ? 18 : 0)
        let plot = Self.width - Self.labelWidth - Self.right
        let largest = max(rows.map { $0.parts.reduce(0) { $0 + max(0, $1) } }.max() ?? 0, marker?.value ?? 0)
        let (step, end) = Self.ticks(upTo: largest)
        let height = top + Double(rows.count) * Self.rowHeight + 40
        func x(_ v: Double) -> Double { Self.labelWidth + (end == 0 ? 0 : v / end * plot) }
        var s = String(format: "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" role=\"img\" aria-label=\"%@\" class=\"chart\">", Self.width, height, Self.width, HTML.escape(title))
        s += "<title>\(HTML.escape(title))</title>"
        s += "<text x=\"0\" y=\"16\" style=\"font-weight:600;font-size:13px\">\(HTML.escape(title))</text>"
        if series.count > 1 {
            var lx = Self.labelWidth
            for (name, color) in series {
                s += String(format: "<rect x=\"%.1f\" y=\"24\" width=\"10\" height=\"10\" fill=\"%@\"/><text x=\"%.1f\" y=\"33\">%@</text>", lx, color, lx + 14, HTML.escape(name))
                lx += 22 + Double(name.count) * 6.5
            }
        }
        let bottom = top + Double(rows.count) * Self.rowHeight
        // Grid and ticks.
        var t = 0.0
        while t <= end + step / 2 {
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dde\"/>", x(t), top, x(t), bottom)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", x(t), bottom + 14, Self.tickText(t, step: step))
            t += step
        }
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>", x(0), bottom, x(end), bottom)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", x(end / 2), bottom + 32, HTML.escape(axis))
        for (i, row) in rows.enumerated() {
            let y = top + Double(i) * Self.rowHeight
            let label = row.label.count > 32 ? String(row.label.prefix(14)) + "…" + String(row.label.suffix(17)) : row.label
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>", Self.labelWidth - 6, y + 13, HTML.escape(label))
            var at = 0.0
            for (k, part) in row.parts.enumerated() where part > 0 {
                let color = series[min(k, series.count - 1)].color
                s += String(format: "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%@\"><title>%@: %@</title></rect>",
                            x(at), y + 3, x(at + part) - x(at), Self.rowHeight - 6, color, HTML.escape(row.label), HTML.escape(series[min(k, series.count - 1)].name))
                at += part
            }
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", x(at) + 4, y + 13, HTML.escape(row.valueText))
        }
        if let m = marker, end > 0 {
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#a11\" stroke-dasharray=\"4 3\"/>", x(m.value), top - 4, x(m.value), bottom)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#a11\">%@</text>", x(m.value) - 3, top - 6, HTML.escape(m.label))
        }
        return s + "</svg>\n"
    }

    /// A round tick step (1, 2 or 5 times a power of ten) giving 4 to 10 ticks, and the axis end.
    static func ticks(upTo largest: Double) -> (step: Double, end: Double) {
        guard largest > 0, largest.isFinite else { return (1, 1) }
        let raw = largest / 5
        let power = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        return (step, (largest / step).rounded(.up) * step)
    }

    static func tickText(_ v: Double, step: Double) -> String {
        step >= 1 ? String(format: "%.0f", v) : String(format: "%.\(Int(-floor(log10(step))))f", v)
    }
}
