import Foundation
import MBBinarize
import MBConvert
import MBCore

extension StudyReport {
    /// Tables for people: per tensor, the homogeneous settings, the heterogeneous mixes as a
    /// mix x method grid of normalized errors (the layout of HBB.md section 4), the average
    /// searches, and every row in detail with its storage cost.
    public func renderText() -> String {
        var out = ""
        for info in tensors {
            let rows = self.rows.filter { $0.tensor == info.name }
            out += "tensor \(info.name) \(info.shape) (\(info.count) values)\n"
            out += "exact mode: " + (info.exact ? "qualifies: \(info.exactDetail)" : "no (\(info.exactDetail))") + "\n"
            let scale = rows.first?.scale ?? "tensor"
            let hasRefit = rows.contains { $0.refitNormalizedError != nil }
            let hasAlternating = rows.contains { $0.alternatingRefitNormalizedError != nil }

            let homogeneous = rows.filter { $0.kind == .homogeneous }
            if !homogeneous.isEmpty {
                out += "\nhomogeneous residual binarization (\(scale) scales)\n"
                var header = ["bits", "norm. error", "SQNR dB", "max abs err", "bits/weight"]
                if hasRefit { header.append("refit error") }
                if hasAlternating { header.append("alternating error") }
                out += table(header: header, rows: homogeneous.map { r in
                    var cells = [String(Int(r.averageBits.rounded())), f3(r.normalizedError), f2(r.sqnrDB), f4(r.maxAbsError), f3(r.storageBitsPerWeight)]
                    if hasRefit { cells.append(r.refitNormalizedError.map(f3) ?? "-") }
                    if hasAlternating { cells.append(r.alternatingRefitNormalizedError.map(f3) ?? "-") }
                    return cells
                }, rightAligned: Set(1..<header.count))
            }

            let mixes = rows.filter { $0.kind == .mix }
            if !mixes.isEmpty {
                out += "\nheterogeneous: normalized error by mask method (\(scale) scales)\n"
                var configs: [String] = []
                for r in mixes where !configs.contains(r.config) { configs.append(r.config) }
                let titles = methods.map { MaskMethod(rawValue: $0)?.title ?? $0 }
                out += table(header: ["mix", "avg bits"] + titles, rows: configs.map { c in
                    let avg = mixes.first { $0.config == c }!.averageBits
                    return [c, f2(avg)] + methods.map { m in mixes.first { $0.config == c && $0.method == m }.map { f3($0.normalizedError) } ?? "-" }
                }, rightAligned: Set(1..<(2 + methods.count)))
            }

            let averages = rows.filter { $0.kind == .average }
            if !averages.isEmpty {
                out += "\naverage bits only: the distribution with the lowest error on this tensor (0.05 grid)\n"
                out += table(header: ["average", "method", "chosen P", "norm. error", "bits/weight"], rows: averages.map {
                    [formatAverage($0.targetAverage ?? 0), $0.method, $0.config, f3($0.normalizedError), f3($0.storageBitsPerWeight)]
                }, rightAligned: [3, 4])
            }

            let sweeps = rows.filter { $0.kind == .sweep }
            if !sweeps.isEmpty {
                out += "\nsweep: every distribution on the 0.05 grid with the given average\n"
                out += table(header: ["average", "P", "method", "norm. error", "bits/weight"], rows: sweeps.map {
                    [formatAverage($0.targetAverage ?? 0), $0.config, $0.method, f4($0.normalizedError), f3($0.storageBitsPerWeight)]
                }, rightAligned: [3, 4])
                var byAverage: [String: [Double]] = [:]
                for r in sweeps { byAverage[formatAverage(r.targetAverage ?? 0) + " " + r.method, default: []].append(r.normalizedError) }
                for key in byAverage.keys.sorted() {
                    let e = byAverage[key]!
                    out += "  \(key): error spread over P \(f4(e.max()! - e.min()!)) (min \(f4(e.min()!)), max \(f4(e.max()!)))\n"
                }
            }

            out += "\ndetails (storage = sign bits + mask at its entropy + Float32 scales, per weight)\n"
            var header = ["kind", "P", "method", "avg bits", "fractions", "norm. error", "SQNR dB", "max abs err", "storage bits/weight"]
            if hasRefit { header.append("refit error") }
            if hasAlternating { header.append("alternating error") }
            out += table(header: header, rows: rows.map { r in
                var cells = [r.kind.rawValue, r.config, r.method, f3(r.averageBits), r.fractions.map(f3).joined(separator: "/"),
                             f4(r.normalizedError), f2(r.sqnrDB), f4(r.maxAbsError),
                             "\(f3(r.storageBitsPerWeight)) = \(f3(r.signBitsPerWeight)) + \(f3(r.maskBitsPerWeight)) + \(f4(r.scaleBitsPerWeight))"]
                if hasRefit { cells.append(r.refitNormalizedError.map(f4) ?? "-") }
                if hasAlternating { cells.append(r.alternatingRefitNormalizedError.map(f4) ?? "-") }
                return cells
            }, rightAligned: [3, 5, 6, 7])
            out += "\n"
        }
        return out
    }

    /// One line per row; the columns of `StudyRow`.
    public func renderCSV() -> String {
        var out = "tensor,kind,config,method,scale,target_average,average_bits,fractions,normalized_error,sqnr_db,max_abs_error,sign_bits_per_weight,mask_bits_per_weight,scale_bits_per_weight,storage_bits_per_weight,refit_normalized_error,alternating_refit_normalized_error\n"
        func q(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        func num(_ x: Double) -> String { x.isInfinite ? (x > 0 ? "inf" : "-inf") : "\(x)" }
        for r in rows {
            out += [q(r.tensor), r.kind.rawValue, q(r.config), r.method, q(r.scale), r.targetAverage.map(num) ?? "",
                    num(r.averageBits), r.fractions.map(num).joined(separator: "/"), num(r.normalizedError), num(r.sqnrDB),
                    num(r.maxAbsError), num(r.signBitsPerWeight), num(r.maskBitsPerWeight), num(r.scaleBitsPerWeight),
                    num(r.storageBitsPerWeight), r.refitNormalizedError.map(num) ?? "",
                    r.alternatingRefitNormalizedError.map(num) ?? ""].joined(separator: ",") + "\n"
        }
        return out
    }

    /// The whole report as JSON (keys sorted; infinities as the strings "inf" / "-inf").
    public func renderJSON() throws -> String {
        try Inspect.json(self)
    }
}

private func f2(_ x: Double) -> String { x.isInfinite ? (x > 0 ? "inf" : "-inf") : String(format: "%.2f", x) }
private func f3(_ x: Double) -> String { x.isInfinite ? (x > 0 ? "inf" : "-inf") : String(format: "%.3f", x) }
private func f4(_ x: Double) -> String { x.isInfinite ? (x > 0 ? "inf" : "-inf") : String(format: "%.4f", x) }
