import Foundation
import MBCore

extension ModelSummary {
    /// The human-readable report of `mbconvert inspect`.
    public func renderText(showAllWeights: Bool = true) -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        line("model:     \(file) (\(formatBytes(fileBytes)))")
        line("ir:        \(irVersion.map(String.init) ?? "-")   opsets: " + opsets.map { "\($0.domain) \($0.version.map(String.init) ?? "?")" }.joined(separator: ", "))
        let producer = [producerName, producerVersion].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        line("producer:  \(producer.isEmpty ? "-" : producer)" + (domain.map { $0.isEmpty ? "" : "   domain: \($0)" } ?? "")
             + (modelVersion.map { "   model_version: \($0)" } ?? ""))
        line("graph:     \(graphName ?? "-")   \(totals.nodes) nodes" + (totals.subgraphNodes > 0 ? " (+\(totals.subgraphNodes) in subgraphs)" : ""))
        line()
        line("inputs:")
        for v in inputs { line("  \(v.name)  \(v.type)  \(v.shape.map { "[" + $0.joined(separator: ", ") + "]" } ?? "(rank unknown)")") }
        line("outputs:")
        for v in outputs { line("  \(v.name)  \(v.type)  \(v.shape.map { "[" + $0.joined(separator: ", ") + "]" } ?? "(rank unknown)")") }
        line()
        line("operators:")
        let width = (operators + subgraphOperators).map(\.op.count).max() ?? 0
        for o in operators { line("  " + o.op.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(o.count)") }
        if !subgraphOperators.isEmpty {
            line("operators in subgraphs:")
            for o in subgraphOperators { line("  " + o.op.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(o.count)") }
        }
        line()
        line("weights: \(weights.count) tensors, \(formatBytes(totals.weightBytes))")
        if showAllWeights, !weights.isEmpty {
            let rows = weights.map { w -> [String] in
                let place = w.location == .external ? "external:\(w.file ?? "?")" : w.location.rawValue
                return [w.name, describeShape(w.shape), w.type, place, w.bytes.map(String.init) ?? "-", w.graph == "graph" ? "" : w.graph]
            }
            out += table(header: ["name", "shape", "type", "location", "bytes", "subgraph"], rows: rows, rightAligned: [4])
        }
        line()
        line("totals:")
        line("  initializers:   \(totals.initializers) tensors, \(totals.initializerBytes) bytes")
        line("  Constant nodes: \(totals.constantNodeTensors) tensors, \(totals.constantNodeBytes) bytes")
        line("  external data:  \(totals.externalTensors) tensors, \(totals.externalBytes) bytes")
        return out
    }
}

/// "1.2 MB" style sizes (decimal units, as file managers show them).
public func formatBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var value = Double(n)
    var unit = 0
    while value >= 1000, unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
}

/// A plain text table with columns padded to their widest cell.
public func table(header: [String], rows: [[String]], rightAligned: Set<Int> = []) -> String {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func render(_ cells: [String]) -> String {
        var parts: [String] = []
        for (i, c) in cells.enumerated() {
            let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
            parts.append(rightAligned.contains(i) ? pad + c : c + pad)
        }
        return "  " + parts.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) + "\n"
    }
    return render(header) + rows.map(render).joined()
}
