import Foundation

/// A heat map over the simplex of three bit widths' fractions, as inline SVG: a triangle whose
/// corners are "all weights at width 1, 2 or 3", every measured P a hexagonal cell at its place
/// (the cells of a grid tile the triangle), coloured by its value on a sequential scale with a
/// legend. Each average B is a straight line across the triangle (p₁ + 2p₂ + 3p₃ = B), drawn
/// dashed and labelled; a sweep at a fixed average fills the cells along its line. Edge ticks
/// read each width's fraction; unmeasured parts of the triangle stay blank.
struct SVGSimplexHeatMap {
    struct Cell {
        /// Fractions of the three widths (sum 1).
        var fractions: [Double]
        var value: Double
        /// The value as printed in the cell and its tooltip.
        var text: String
    }

    var title: String
    /// What the colour means, with its unit: "top-1 agreement (%)".
    var legend: String
    /// The three widths, for the corner and edge labels.
    var bits: [Int]
    var cells: [Cell]
    /// Grid units per 1 (the cells' size).
    var units: Int
    /// Averages whose lines are drawn.
    var averages: [Double]
    /// Whether larger values are better (the brighter end of the scale is always the better one,
    /// and the best cell is outlined).
    var higherIsBetter: Bool
    /// Unique within the page (the triangle's clip path is referenced by id).
    var id: String

    static let side = 440.0, left = 60.0, top = 44.0
    static var height: Double { side * 3.0.squareRoot() / 2 }

    /// Pixel position of fractions (p1, p2, p3): width 1 bottom left, width 3 bottom right, width 2 at the top.
    static func point(_ p: [Double]) -> (x: Double, y: Double) {
        let corners = [(left, top + height), (left + side / 2, top), (left + side, top + height)]
        var x = 0.0, y = 0.0
        for k in 0..<3 {
            x += p[k] * corners[k].0
            y += p[k] * corners[k].1
        }
        return (x, y)
    }

    /// Where the line of average `b` meets the triangle's edges (two points, or none).
    static func averageLine(_ b: Double, bits: [Int]) -> [[Double]] {
        var ends: [[Double]] = []
        // On the edge where width k is absent: the two others i < j with p_i + p_j = 1,
        // bits_i p_i + bits_j p_j = b.
        for k in 0..<3 {
            let others = (0..<3).filter { $0 != k }
            let (i, j) = (others[0], others[1])
            let span = Double(bits[j] - bits[i])
            let pj = (b - Double(bits[i])) / span
            guard pj >= -1e-9, pj <= 1 + 1e-9 else { continue }
            var p = [0.0, 0.0, 0.0]
            p[i] = 1 - pj
            p[j] = pj
            if !ends.contains(where: { zip($0, p).allSatisfy { abs($0 - $1) < 1e-9 } }) { ends.append(p) }
        }
        return ends.count == 2 ? ends : []
    }

    /// A sequential scale (dark blue through green to yellow), t in 0...1.
    static func color(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(1, max(0, t.isFinite ? t : 0)) * Double(stops.count - 1)
        let k = min(stops.count - 2, Int(x))
        let f = x - Double(k)
        let a = stops[k], b = stops[k + 1]
        return String(format: "#%02x%02x%02x", Int((a.0 + (b.0 - a.0) * f).rounded()), Int((a.1 + (b.1 - a.1) * f).rounded()),
                      Int((a.2 + (b.2 - a.2) * f).rounded()))
    }

    func render() -> String {
        let h = Self.height
        let width = Self.left + Self.side + 150, svgHeight = Self.top + h + 72
        let finite = cells.map(\.value).filter(\.isFinite)
        let low = finite.min() ?? 0, high = finite.max() ?? 1
        func t(_ v: Double) -> Double {
            let u = high > low ? (v - low) / (high - low) : 1
            return higherIsBetter ? u : 1 - u
        }
        let corners = [Self.point([1, 0, 0]), Self.point([0, 1, 0]), Self.point([0, 0, 1])]
        let outline = corners.map { String(format: "%.1f,%.1f", $0.x, $0.y) }.joined(separator: " ")
        var s = String(format: "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" role=\"img\" aria-label=\"%@\" class=\"chart heatmap\">",
                       width, svgHeight, width, HTML.escape(title))
        s += "<title>\(HTML.escape(title))</title>"
        s += "<text x=\"0\" y=\"16\" style=\"font-weight:600;font-size:13px\">\(HTML.escape(title))</text>"
        s += "<defs><clipPath id=\"\(id)-clip\"><polygon points=\"\(outline)\"/></clipPath></defs>"
        s += "<polygon points=\"\(outline)\" fill=\"#f6f7f9\"/>"
        // Cells: the hexagons of the triangular grid, clipped to the triangle.
        let radius = Self.side / Double(units) / 3.0.squareRoot()
        let best = higherIsBetter ? finite.max() : finite.min()
        s += "<g clip-path=\"url(#\(id)-clip)\">"
        for cell in cells {
            let c = Self.point(cell.fractions)
            let hexagon = (0..<6).map { k -> String in
                let angle = Double.pi / 2 + Double(k) * Double.pi / 3
                return String(format: "%.1f,%.1f", c.x + radius * cos(angle), c.y - radius * sin(angle))
            }.joined(separator: " ")
            let p = cell.fractions.map { String(format: "%.2f", $0) }.joined(separator: "/")
            s += "<polygon class=\"cell\" points=\"\(hexagon)\" fill=\"\(Self.color(t(cell.value)))\" stroke=\"#fff\" stroke-width=\"0.6\">"
            s += "<title>P \(p) (\(bits.map { "\($0)-bit" }.joined(separator: "/"))): \(HTML.escape(cell.text))</title></polygon>"
        }
        s += "</g>"
        for cell in cells where cell.value == best && high > low {
            let c = Self.point(cell.fractions)
            s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"none\" stroke=\"#c00\" stroke-width=\"1.6\"/>", c.x, c.y, radius * 0.9)
        }
        // Cell values where the cells are large enough to read.
        if radius >= 10 {
            for cell in cells {
                let c = Self.point(cell.fractions)
                let dark = t(cell.value) < 0.55
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" style=\"font-size:7px;fill:%@\">%@</text>",
                            c.x, c.y + 2.5, dark ? "#fff" : "#111", HTML.escape(cell.text))
            }
        }
        // The triangle, its grid lines and edge ticks: the left edge reads the 2-bit fraction, the
        // right edge the 3-bit one, the bottom the 1-bit one (each rising towards its corner).
        s += "<polygon points=\"\(outline)\" fill=\"none\" stroke=\"#555\"/>"
        for tick in stride(from: 0.2, through: 0.81, by: 0.2) {
            for k in 0..<3 {
                let next = (k + 1) % 3, other = (k + 2) % 3
                var a = [0.0, 0.0, 0.0], b = [0.0, 0.0, 0.0]
                a[next] = tick; a[k] = 1 - tick
                b[next] = tick; b[other] = 1 - tick
                let pa = Self.point(a), pb = Self.point(b)
                s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#bbb\" stroke-width=\"0.5\" stroke-dasharray=\"2 3\"/>", pa.x, pa.y, pb.x, pb.y)
                let (dx, dy): (Double, Double) = [(-8.0, 3.0), (8.0, 3.0), (0.0, 14.0)][k]
                let anchor = ["end", "start", "middle"][k]
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%@\" style=\"font-size:9px\">%.1f</text>", pa.x + dx, pa.y + dy, anchor, tick)
            }
        }
        // Edge captions and corner labels.
        let names = bits.map { "\($0)-bit" }
        let mid = { (a: Int, b: Int) -> (x: Double, y: Double) in ((corners[a].x + corners[b].x) / 2, (corners[a].y + corners[b].y) / 2) }
        let bottom = mid(0, 2), leftEdge = mid(0, 1), rightEdge = mid(1, 2)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">← %@ fraction; dashed red: fixed average bits B</text>", bottom.x, bottom.y + 46, names[0])
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-60 %.1f %.1f)\">%@ fraction →</text>",
                    leftEdge.x - 26, leftEdge.y, leftEdge.x - 26, leftEdge.y, names[1])
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(60 %.1f %.1f)\">%@ fraction →</text>",
                    rightEdge.x + 26, rightEdge.y, rightEdge.x + 26, rightEdge.y, names[2])
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" style=\"font-weight:600\">all %@</text>", corners[0].x - 4, corners[0].y + 14, names[0])
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" style=\"font-weight:600\">all %@</text>", corners[1].x, corners[1].y - 6, names[1])
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\" style=\"font-weight:600\">all %@</text>", corners[2].x + 4, corners[2].y + 14, names[2])
        // Lines of constant average.
        for b in averages {
            let ends = Self.averageLine(b, bits: bits)
            guard ends.count == 2 else { continue }
            let p = Self.point(ends[0]), q = Self.point(ends[1])
            s += String(format: "<line class=\"average\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#a11\" stroke-width=\"1\" stroke-dasharray=\"5 3\"/>", p.x, p.y, q.x, q.y)
            // The label outside the triangle, past the edge ticks, at an end that is not a corner
            // (bottom edge first, then the left, then the right).
            let placed = ends.filter { $0.filter { $0 == 0 }.count == 1 }.sorted { e, f in
                let rank = { (x: [Double]) in x[1] == 0 ? 0 : x[2] == 0 ? 1 : 2 }
                return rank(e) < rank(f)
            }
            if let end = placed.first {
                let at = Self.point(end)
                // With three widths a fixed average is a vertical line (x grows with B), so the
                // labels of many averages sit side by side under the bottom edge: numbers only.
                let (dx, dy, anchor) = end[1] == 0 ? (0.0, 28.0, "middle") : end[2] == 0 ? (-28.0, 3.0, "end") : (28.0, 3.0, "start")
                let text = averages.count > 3 ? formatAverage(b) : "B = \(formatAverage(b))"
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%@\" style=\"fill:#a11\">%@</text>", at.x + dx, at.y + dy, anchor, text)
            }
        }
        // Legend: the colour scale with its range and unit.
        let lx = Self.left + Self.side + 40, ly = Self.top + 20, lh = 160.0
        s += "<defs><linearGradient id=\"\(id)-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
        for k in 0...4 { s += String(format: "<stop offset=\"%.2f\" stop-color=\"%@\"/>", Double(k) / 4, Self.color(Double(k) / 4)) }
        s += "</linearGradient></defs>"
        s += String(format: "<rect class=\"legend\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"url(#%@-scale)\" stroke=\"#555\" stroke-width=\"0.5\"/>", lx, ly, lh, id)
        let (topValue, bottomValue) = higherIsBetter ? (high, low) : (low, high)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@ (better)</text>", lx + 18, ly + 8, HTML.escape(Self.legendValue(topValue, range: high - low)))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", lx + 18, ly + lh, HTML.escape(Self.legendValue(bottomValue, range: high - low)))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" transform=\"rotate(-90 %.1f %.1f)\" text-anchor=\"middle\">%@</text>",
                    lx - 6, ly + lh / 2, lx - 6, ly + lh / 2, HTML.escape(legend))
        s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"none\" stroke=\"#c00\" stroke-width=\"1.6\"/><text x=\"%.1f\" y=\"%.1f\">best P</text>",
                    lx + 7, ly + lh + 22, lx + 16, ly + lh + 26)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#a11\" stroke-dasharray=\"5 3\"/><text x=\"%.1f\" y=\"%.1f\">fixed average</text>",
                    lx, ly + lh + 40, lx + 14, ly + lh + 40, lx + 18, ly + lh + 44)
        return s + "</svg>\n"
    }

    static func legendValue(_ v: Double, range: Double) -> String {
        let digits = range == 0 || range >= 1 ? 1 : range >= 0.01 ? 3 : 4
        return String(format: "%.\(digits)f", v)
    }
}
