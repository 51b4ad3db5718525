import Foundation

extension PolicyCheckReport {
    /// The report on stdout. Diagnostics go to stderr (`diagnosticsText`), compiler style.
    public func renderText() -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        line("policy: \(policyFile)" + (version.map { " (version \($0))" } ?? ""))
        guard version != nil else {
            line()
            line(summaryLine)
            return out
        }
        if let target { line("target: average \(formatNumber(target)) bits over the binarized weights") }
        if targetAllocation == "sensitivity" {
            line("allocate: sensitivity: the conversion (with --calibrate) re-spreads the bits by each layer's measured effect on the model's outputs; the shares below are the weight-error spread")
        }
        line("rules (tried in order; the first match wins):")
        var ruleRows = rules.map { r in [r.name, r.match, r.settings] + (r.tensors.map { [Self.count($0, "tensor")] } ?? []) }
        ruleRows.append(["default", "(anything else)", defaultRule ?? ""] + (defaultTensors.map { [Self.count($0, "weight")] } ?? []))
        out += table(header: ["rule", "match", "settings"] + (modelFile == nil ? [] : ["governs"]), rows: ruleRows)

        if let modelFile {
            line()
            line("model: \(modelFile)")
            let rows = self.rows.map { r -> [String] in
                var name = r.tensor
                if !r.isWeight { name += " (not a weight)" }
                let how: String
                if let keep = r.keep {
                    how = "keep \(keep)"
                } else if let quantizer = r.quantizer {
                    how = quantizer
                } else {
                    let p = r.p.map { ps in
                        ps.count == 1 ? "\(ps[0].bits)-bit" : "{" + ps.map { "\($0.bits): \(formatNumber($0.fraction))" }.joined(separator: ", ") + "}"
                    } ?? "?"
                    let via = r.allocation.map { $0 == "mix" || $0 == "bits" ? "" : " (\($0))" } ?? ""
                    how = "\(p)\(via) \(r.method ?? "") \(r.scale ?? "")" + (r.refit == true ? (r.refitMode == "alternating" ? " alternating-refit" : " refit") : "")
                }
                return [name, r.ops.joined(separator: ","), "[" + r.shape.map(String.init).joined(separator: ", ") + "]",
                        String(r.elements), r.source, r.facts.joined(separator: ","), r.rule, how,
                        r.averageBits.map { String(format: "%.3f", $0) } ?? "-", String(format: "%.3f", r.bitsPerWeight), String(r.bytes)]
            }
            out += table(header: ["tensor", "op", "shape", "elements", "source", "position", "rule", "storage",
                                  "avg bits", "bits/weight", "bytes"],
                         rows: rows, rightAligned: [3, 8, 9, 10])
            if let t = totals {
                line()
                line("totals:")
                line("  weights:    \(Self.count(t.weights, "tensor")), \(t.weightElements) elements"
                     + (t.others > 0 ? "; plus \(Self.count(t.others, "other tensor")) named by rules" : ""))
                line("  binarized:  \(Self.count(t.binarized, "tensor")), \(t.binarizedElements) elements, "
                     + String(format: "%.3f", t.averageBits) + " average bits; kept as float: \(Self.count(t.kept, "tensor"))"
                     + (t.quantized.map { "; int/palette: \(Self.count($0, "tensor"))" } ?? ""))
                let ratio = t.predictedBytes == 0 ? "" : String(format: " (%.1fx smaller)", Double(t.float32Bytes) / Double(t.predictedBytes))
                line("  predicted:  \(t.predictedBytes) bytes (\(formatBytes(t.predictedBytes))), " + String(format: "%.3f", t.bitsPerWeight)
                     + " bits per weight with signs, masks and scales; float32: \(t.float32Bytes) bytes\(ratio)")
                line("  (a prediction: masks at their entropy, 32-bit scales, container headers not counted)")
            }
        }
        line()
        line(summaryLine)
        return out
    }

    /// "policy.txt: ok" or "policy.txt: 2 errors, 1 warning".
    public var summaryLine: String {
        if errorCount == 0 && warningCount == 0 { return "\(policyFile): ok" }
        var parts: [String] = []
        if errorCount > 0 { parts.append(Self.count(errorCount, "error")) }
        if warningCount > 0 { parts.append(Self.count(warningCount, "warning")) }
        return "\(policyFile): " + (errorCount == 0 ? "ok with " : "") + parts.joined(separator: ", ")
    }

    /// One line per diagnostic, for stderr.
    public var diagnosticsText: String { diagnostics.map { $0.text + "\n" }.joined() }

    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
}
