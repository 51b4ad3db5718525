import Foundation
import MBConvert

/// The sections of `HTMLReport`, one function each.
enum ReportSections {
    static func fact(_ name: String, _ value: String) -> String {
        "<div>\(HTML.escape(name))<b>\(HTML.escape(value))</b></div>"
    }

    static func summary(_ input: HTMLReport.Input) -> String {
        var facts: [String] = []
        if let t = input.conversion?.totals {
            facts += [fact("ONNX model", formatBytes(t.onnxBytes)), fact(".mbm file", formatBytes(t.mbmBytes)),
                      fact("smaller by", String(format: "%.1f×", t.compression)), fact("weights", "\(t.weights)"),
                      fact("stored bits per weight", String(format: "%.3f", t.bitsPerWeight))]
            if let b = t.binarizedBitsPerWeight { facts.append(fact("binarized: bits per weight", String(format: "%.3f (%d weights)", b, t.binarizedWeights))) }
            facts.append(fact("conversion time", String(format: "%.2f s", t.seconds)))
        } else if let s = input.storage {
            facts.append(fact(".mbm file", formatBytes(s.fileBytes)))
            let layers = withStoredBits(s.layers ?? [], s)
            let weights = layers.reduce(0) { $0 + $1.elements }
            let bytes = layers.reduce(0) { $0 + $1.storedBytes }
            if weights > 0 { facts += [fact("weights", "\(weights)"), fact("stored bits per weight", String(format: "%.3f", Double(bytes * 8) / Double(weights)))] }
        }
        if let c = input.conversion?.calibrationSeconds { facts.append(fact("calibration", String(format: "%.2f s", c))) }
        if let v = input.verification {
            facts.append(fact("verify", v.passed ? "passed" : "FAILED"))
            for o in v.outputs {
                facts.append(fact("output \(o.name)", String(format: "SQNR %.2f dB, cosine %.4f", o.sqnrDB, o.cosine)
                    + (o.top1Agreement.map { String(format: ", top-1 %.1f %%", 100 * $0) } ?? "")))
            }
        }
        return facts.isEmpty ? "" : "<h2>Summary</h2><div class=\"facts\">" + facts.joined() + "</div>\n"
    }

    static let partColors: [(name: String, color: String)] = [("sign bits", "#3b6ea5"), ("masks", "#e0a030"), ("scales", "#5aa05a"),
                                                               ("raw elements", "#8c6bb1"), ("graph, metadata, headers", "#b0b4ba"),
                                                               ("int/palette codes and tables", "#c05050")]

    static func sizes(_ s: StorageBreakdown, onnxBytes: Int?) -> String {
        let bin = s.tensors.filter { $0.encoding == "binarized" }, raw = s.tensors.filter { $0.encoding != "binarized" }
        func sum(_ ts: [StorageBreakdown.Tensor], _ k: KeyPath<StorageBreakdown.Tensor, Int>) -> Int { ts.reduce(0) { $0 + $1[keyPath: k] } }
        let signs = sum(bin, \.signBytes), masks = sum(bin, \.maskBytes), scales = sum(bin, \.scaleBytes), other = sum(bin, \.otherBytes)
        let rawBytes = sum(raw, \.rawBytes), structure = s.structureBytes + other
        let quantized = sum(raw, \.codeBytes) + sum(raw, \.tableBytes)
        let kB = 1000.0
        var rows: [SVGBarChart.Row] = []
        if let onnxBytes { rows.append(.init(label: "ONNX model", parts: [0, 0, 0, Double(onnxBytes) / kB, 0, 0], valueText: formatBytes(onnxBytes))) }
        let floatBin = sum(bin, \.sourceBytes)
        rows.append(.init(label: ".mbm file", parts: [signs, masks, scales, rawBytes, structure, quantized].map { Double($0) / kB }, valueText: formatBytes(s.fileBytes)))
        if !bin.isEmpty {
            rows.append(.init(label: "binarized weights as float32", parts: [0, 0, 0, Double(floatBin) / kB, 0, 0], valueText: formatBytes(floatBin)))
            rows.append(.init(label: "binarized weights stored", parts: [signs, masks, scales, 0, other, 0].map { Double($0) / kB },
                              valueText: formatBytes(signs + masks + scales + other)))
        }
        rows.append(.init(label: "kept tensors (raw)", parts: [0, 0, 0, Double(rawBytes) / kB, 0, 0], valueText: formatBytes(rawBytes)))
        var out = "<h2>Size</h2>\n"
        out += SVGBarChart(title: "Where the bytes go", axis: "kB (1 kB = 1000 bytes)", rows: rows, series: partColors).render()
        let table = HTMLTable(header: ["part", "bytes", "share of the file"], numeric: [1, 2], rows: [
            ("sign bits (binarized)", signs), ("masks (binarized)", masks), ("scales (binarized)", scales),
            ("level counts and alignment (binarized)", other), ("raw elements (kept tensors, biases, BatchNormalization)", rawBytes),
            ("codes and tables (int: and palette: tensors)", quantized),
            ("graph, metadata, headers, checksums", s.structureBytes),
        ].map { name, bytes in
            [.text(name), .number(Double(bytes), "\(bytes)"), .number(Double(bytes) / Double(max(1, s.fileBytes)), String(format: "%.1f %%", 100 * Double(bytes) / Double(max(1, s.fileBytes))))]
        })
        return out + table.render()
    }

    /// The layers with stored bytes and bits per weight from the file itself (the statistics a
    /// file records are written before its sizes are known).
    static func withStoredBits(_ layers: [ConversionReport.Layer], _ storage: StorageBreakdown?) -> [ConversionReport.Layer] {
        guard let storage else { return layers }
        let bytes = Dictionary(storage.tensors.map { ($0.name, $0.storedBytes) }, uniquingKeysWith: { a, _ in a })
        return layers.map { l in
            var l = l
            if let b = bytes[l.name], l.elements > 0 {
                l.storedBytes = b
                l.bitsPerWeight = Double(b * 8) / Double(l.elements)
            }
            return l
        }
    }

    static func layers(_ layers: [ConversionReport.Layer], conversion: ConversionReport?) -> String {
        let allocation = Dictionary((conversion?.allocation ?? []).map { ($0.tensor, $0) }, uniquingKeysWith: { a, _ in a })
        let calibration = Dictionary((conversion?.calibration ?? []).map { ($0.node, $0) }, uniquingKeysWith: { a, _ in a })
        func mix(_ m: [ConversionReport.MixEntry]?) -> String {
            m.map { $0.map { String(format: "%d:%.2f", $0.bits, $0.fraction) }.joined(separator: " ") } ?? "-"
        }
        func num(_ v: Double?, _ format: String) -> HTMLTable.Cell { .number(v, v.map { String(format: format, $0) } ?? "-") }
        var header = ["layer", "op", "shape", "rule", "stored as", "P", "average bits", "stored bits/weight", "weight error"]
        var numeric: Set<Int> = [6, 7, 8]
        if !allocation.isEmpty { header += ["sensitivity", "allocated bits"]; numeric.formUnion([9, 10]) }
        if !calibration.isEmpty { header += ["calibration mean |a−1|", "mean |b|/σ"]; numeric.formUnion([header.count - 2, header.count - 1]) }
        let rows: [[HTMLTable.Cell]] = layers.map { l in
            var r: [HTMLTable.Cell] = [.text(l.name), .text(l.op), .text("[" + l.shape.map(String.init).joined(separator: ",") + "]"), .text(l.rule),
                                      .text(l.encoding), .text(mix(l.realizedMix)), num(l.averageBits, "%.3f"), num(l.bitsPerWeight, "%.3f"),
                                      num(l.normalizedError, "%.4f")]
            if !allocation.isEmpty { r += [num(allocation[l.name]?.sensitivity, "%.3e"), num(allocation[l.name]?.averageBits, "%.1f")] }
            if !calibration.isEmpty { r += [num(calibration[l.node]?.meanScaleChange, "%.4f"), num(calibration[l.node]?.meanShift, "%.4f")] }
            return r
        }
        var out = "<h2>Layers</h2>\n<p class=\"note\">Click a column to sort. Weight error: ‖W − Ŵ‖ / ‖W‖. Stored bits count signs, masks and scales.</p>\n"
        out += HTMLTable(header: header, numeric: numeric, rows: rows).render()
        out += SVGBarChart(title: "Stored bits per weight, per layer", axis: "bits per weight (signs, masks, scales)",
                           rows: layers.map { .init(label: $0.name, parts: [$0.bitsPerWeight], valueText: String(format: "%.2f", $0.bitsPerWeight)) }).render()
        let withError = layers.filter { $0.normalizedError != nil }
        if !withError.isEmpty {
            out += SVGBarChart(title: "Weight error per layer", axis: "normalized weight error ‖W − Ŵ‖ / ‖W‖ (no unit)",
                               rows: withError.map { .init(label: $0.name, parts: [$0.normalizedError!], valueText: String(format: "%.3f", $0.normalizedError!)) },
                               series: [("weight error", "#c0504d")]).render()
        }
        if !allocation.isEmpty {
            let a = layers.compactMap { l in allocation[l.name].map { (l.name, $0) } }
            out += SVGBarChart(title: "Bits allocated by sensitivity", axis: "requested average bits per weight",
                               rows: a.map { .init(label: $0.0, parts: [$0.1.averageBits ?? 0], valueText: String(format: "%.1f (α %.2g)", $0.1.averageBits ?? 0, $0.1.sensitivity)) },
                               series: [("allocated bits", "#5aa05a")]).render()
        }
        return out
    }

    static func verification(_ v: Verify.Report) -> String {
        var out = "<h2>Verification</h2>\n<p>\(v.passed ? "<span class=\"ok\">passed</span>" : "<span class=\"bad\">FAILED</span>") · checksums \(HTML.escape(v.checksums)) · "
        out += "\(v.weights.filter(\.identical).count) of \(v.weights.count) weights identical to the recomputed conversion · inputs \(HTML.escape(v.inputs))</p>\n"
        if !v.failures.isEmpty { out += "<ul class=\"bad\">" + v.failures.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>\n" }
        out += HTMLTable(header: ["output", "shape", "max abs error", "cosine", "SQNR dB", "top-1 agreement", "margin-aware"], numeric: [2, 3, 4, 5, 6], rows: v.outputs.map { o in
            [.text(o.name), .text("\(o.shape)"), .number(o.maxAbsError, String(format: "%.4g", o.maxAbsError)), .number(o.cosine, String(format: "%.6f", o.cosine)),
             .number(o.sqnrDB, String(format: "%.2f", o.sqnrDB)), .number(o.top1Agreement, o.top1Agreement.map { String(format: "%.1f %% of %d", 100 * $0, o.rows ?? 0) } ?? "-"),
             .number(o.marginAgreement, o.marginAgreement.map { String(format: "%.1f %% of %d", 100 * $0, o.marginRows ?? 0) } ?? "-")]
        }).render()
        if let rows = v.perLayer, !rows.isEmpty { out += perLayer(rows) }
        return out
    }

    static func perLayer(_ rows: [LayerDiagnostic.Row]) -> String {
        func sqnr(_ d: Double) -> String { d.isFinite ? String(format: "%.2f", d) : "inf" }
        func top1(_ t: Double?) -> HTMLTable.Cell { .number(t, t.map { String(format: "%.1f %%", 100 * $0) } ?? "-") }
        var out = "<h2>Which layer broke it</h2>\n<p class=\"note\">Each converted layer alone in the float model, and every converted layer up to it in graph order (prefix), against the float model on the evaluation inputs; worst alone first.</p>\n"
        out += SVGBarChart(title: "Output SQNR with only this layer converted (worst first)", axis: "output SQNR (dB); shorter is worse",
                           rows: rows.map { .init(label: $0.tensor, parts: [$0.alone.sqnrDB.isFinite ? $0.alone.sqnrDB : 0], valueText: sqnr($0.alone.sqnrDB) + " dB") },
                           series: [("alone", "#c0504d")]).render()
        let ordered = rows.sorted { $0.position < $1.position }
        out += SVGBarChart(title: "Output SQNR with every layer up to this one converted (graph order)", axis: "output SQNR (dB)",
                           rows: ordered.map { .init(label: "\($0.position). \($0.tensor)", parts: [$0.prefix.sqnrDB.isFinite ? $0.prefix.sqnrDB : 0], valueText: sqnr($0.prefix.sqnrDB) + " dB") }).render()
        out += HTMLTable(header: ["layer", "#", "stored as", "bits", "alone SQNR dB", "alone cosine", "alone top-1", "prefix SQNR dB", "prefix cosine", "prefix top-1", "prefix drop dB"],
                         numeric: Set(1...10).subtracting([2]), rows: rows.map { r in
            [.text(r.tensor), .number(Double(r.position), "\(r.position)"), .text(r.storedAs), .number(r.averageBits, r.averageBits.map { String(format: "%.2f", $0) } ?? "-"),
             .number(r.alone.sqnrDB, sqnr(r.alone.sqnrDB)), .number(r.alone.cosine, String(format: "%.5f", r.alone.cosine)), top1(r.alone.top1Agreement),
             .number(r.prefix.sqnrDB, sqnr(r.prefix.sqnrDB)), .number(r.prefix.cosine, String(format: "%.5f", r.prefix.cosine)), top1(r.prefix.top1Agreement),
             .number(r.prefixDropDB, r.prefixDropDB.map(sqnr) ?? "-")]
        }).render()
        return out
    }
}
