/// A table whose columns sort on a click (`HTML.sortScript`). A numeric cell carries its
/// value in `data-v` so it sorts as a number whatever its text says ("12.3 %", "inf").
struct HTMLTable {
    enum Cell {
        case text(String)
        case number(Double?, String)
    }

    var header: [String]
    /// Columns holding numbers (right-aligned).
    var numeric: Set<Int>
    var rows: [[Cell]]

    func render() -> String {
        var out = "<div class=\"scroll\"><table class=\"sortable\"><thead><tr>"
        for (i, h) in header.enumerated() { out += numeric.contains(i) ? "<th class=\"n\">\(HTML.escape(h))</th>" : "<th>\(HTML.escape(h))</th>" }
        out += "</tr></thead><tbody>\n"
        for row in rows {
            out += "<tr>"
            for cell in row {
                switch cell {
                case .text(let s): out += "<td>\(HTML.escape(s))</td>"
                case .number(let v, let s):
                    let key = v.map { $0.isFinite ? "\($0)" : ($0 > 0 ? "1e308" : "-1e308") }
                    out += "<td class=\"n\"\(key.map { " data-v=\"\($0)\"" } ?? "")>\(HTML.escape(s))</td>"
                }
            }
            out += "</tr>\n"
        }
        return out + "</tbody></table></div>\n"
    }
}
