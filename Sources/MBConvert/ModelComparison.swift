import Foundation
import MBCore
import MBFormat

/// Where a stored model differs from the model a conversion must have produced: opsets, graph
/// inputs and outputs, every node (name, operator, inputs, outputs, every attribute, subgraphs
/// included) and every constant, element by element. Each difference is one line naming the
/// place and, for tensors, the first differing element with both values. `verify` uses it so
/// that every byte of a `.mbm` that affects results is checked, not only the binarized weights.
enum ModelComparison {
    /// Up to `limit` differences, in file order; empty when the models are the same.
    static func differences(expected: IRModel, stored: IRModel, limit: Int = 20) -> [String] {
        var out = Collector(limit: limit)
        if expected.opsets != stored.opsets {
            out.add("opsets: stored \(stored.opsets.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" }), expected \(expected.opsets.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" })")
        }
        graph(expected.graph, stored.graph, at: "graph", into: &out)
        return out.lines
    }

    struct Collector {
        var limit: Int
        var lines: [String] = []
        var full: Bool { lines.count >= limit }
        mutating func add(_ line: String) { if !full { lines.append(line) } }
    }

    static func graph(_ e: IRGraph, _ s: IRGraph, at place: String, into out: inout Collector) {
        if e.name != s.name { out.add("\(place) name: stored '\(s.name)', expected '\(e.name)'") }
        values(e.inputs, s.inputs, at: "\(place) inputs", into: &out)
        values(e.outputs, s.outputs, at: "\(place) outputs", into: &out)
        if e.nodes.count != s.nodes.count {
            out.add("\(place): \(s.nodes.count) nodes stored, \(e.nodes.count) expected")
        }
        for (i, (a, b)) in zip(e.nodes, s.nodes).enumerated() where !out.full {
            node(a, b, at: "\(place) node \(i) '\(a.name)'", into: &out)
        }
        let stored = Dictionary(s.constants.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let expected = Set(e.constants.map(\.name))
        for c in e.constants where !out.full {
            guard let t = stored[c.name] else { out.add("constant '\(c.name)': missing from the .mbm"); continue }
            if let d = tensor(c, t) { out.add("constant '\(c.name)': \(d)") }
        }
        for c in s.constants where !expected.contains(c.name) { out.add("constant '\(c.name)': in the .mbm but not produced by the conversion") }
        if s.constants.count != Set(s.constants.map(\.name)).count { out.add("\(place): constant names repeat") }
    }

    static func values(_ e: [IRValueInfo], _ s: [IRValueInfo], at place: String, into out: inout Collector) {
        func text(_ v: IRValueInfo) -> String {
            "\(v.name): \(v.elementType?.name ?? "?") \(v.shape.map { "[" + $0.map(\.description).joined(separator: ",") + "]" } ?? "rank ?")"
        }
        let a = e.map(text), b = s.map(text)
        if a != b { out.add("\(place): stored \(b), expected \(a)") }
    }

    static func node(_ e: IRNode, _ s: IRNode, at place: String, into out: inout Collector) {
        if e.name != s.name || e.opType != s.opType || e.domain != s.domain {
            out.add("\(place): stored \(s.domain.isEmpty ? "" : s.domain + ":")\(s.opType) '\(s.name)', expected \(e.domain.isEmpty ? "" : e.domain + ":")\(e.opType) '\(e.name)'")
            return
        }
        if e.inputs != s.inputs { out.add("\(place) inputs: stored \(s.inputs), expected \(e.inputs)") }
        if e.outputs != s.outputs { out.add("\(place) outputs: stored \(s.outputs), expected \(e.outputs)") }
        let names = (e.attributes.map(\.name), s.attributes.map(\.name))
        if names.0 != names.1 { out.add("\(place) attributes: stored \(names.1), expected \(names.0)"); return }
        // Binarized activations compare as the spec they decode to, exactly: files written
        // before P was stored as doubles hold its fractions as float32.
        let expected = try? ActivationAttributes.decode(e.attributes)
        if let expected {
            let stored = try? ActivationAttributes.decode(s.attributes)
            if stored != expected { out.add("\(place) binarized activations: stored \(stored.map(\.description) ?? "none or invalid"), expected \(expected)") }
        }
        for (a, b) in zip(e.attributes, s.attributes) where !out.full {
            if expected != nil, a.name.hasPrefix(ActivationAttributes.prefix) { continue }
            attribute(a.value, b.value, at: "\(place) attribute '\(a.name)'", into: &out)
        }
    }

    static func attribute(_ e: IRAttributeValue, _ s: IRAttributeValue, at place: String, into out: inout Collector) {
        switch (e, s) {
        case (.float(let a), .float(let b)):
            if a.bitPattern != b.bitPattern { out.add("\(place): stored \(b), expected \(a)") }
        case (.int(let a), .int(let b)):
            if a != b { out.add("\(place): stored \(b), expected \(a)") }
        case (.string(let a), .string(let b)):
            if a != b { out.add("\(place): stored '\(String(decoding: b, as: UTF8.self))', expected '\(String(decoding: a, as: UTF8.self))'") }
        case (.floats(let a), .floats(let b)):
            if let i = firstDifference(a.map(\.bitPattern), b.map(\.bitPattern)) {
                out.add("\(place): element \(i): stored \(i < b.count ? "\(b[i])" : "nothing"), expected \(i < a.count ? "\(a[i])" : "nothing")")
            }
        case (.doubles(let a), .doubles(let b)):
            if let i = firstDifference(a.map(\.bitPattern), b.map(\.bitPattern)) {
                out.add("\(place): element \(i): stored \(i < b.count ? "\(b[i])" : "nothing"), expected \(i < a.count ? "\(a[i])" : "nothing")")
            }
        case (.ints(let a), .ints(let b)):
            if let i = firstDifference(a, b) {
                out.add("\(place): element \(i): stored \(i < b.count ? "\(b[i])" : "nothing"), expected \(i < a.count ? "\(a[i])" : "nothing")")
            }
        case (.strings(let a), .strings(let b)):
            if a != b { out.add("\(place): strings differ") }
        case (.tensor(let a), .tensor(let b)):
            if let d = tensor(a, b) { out.add("\(place): \(d)") }
        case (.tensors(let a), .tensors(let b)):
            if a.count != b.count { out.add("\(place): \(b.count) tensors stored, \(a.count) expected") }
            for (i, (x, y)) in zip(a, b).enumerated() { if let d = tensor(x, y) { out.add("\(place) tensor \(i): \(d)") } }
        case (.graph(let a), .graph(let b)):
            graph(a, b, at: "\(place) subgraph", into: &out)
        case (.graphs(let a), .graphs(let b)):
            if a.count != b.count { out.add("\(place): \(b.count) subgraphs stored, \(a.count) expected") }
            for (i, (x, y)) in zip(a, b).enumerated() { graph(x, y, at: "\(place) subgraph \(i)", into: &out) }
        case (.type(let a), .type(let b)):
            if a != b { out.add("\(place): stored type \(b), expected \(a)") }
        default:
            out.add("\(place): stored as another attribute kind")
        }
    }

    static func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int? {
        if let i = (0..<min(a.count, b.count)).first(where: { a[$0] != b[$0] }) { return i }
        return a.count == b.count ? nil : min(a.count, b.count)
    }

    /// nil when `s` (stored) equals `e` (expected) in type, shape and every stored bit; else
    /// where they first differ, with both values.
    static func tensor(_ e: IRTensor, _ s: IRTensor) -> String? {
        guard e.elementType == s.elementType else { return "stored as \(s.elementType.name), expected \(e.elementType.name)" }
        guard e.shape == s.shape else { return "shape \(s.shape) stored, \(e.shape) expected" }
        switch (e.storage, s.storage) {
        case (.dense(let x), .dense(let y)):
            // Equal bytes are found in place (a large kept tensor is not copied twice to say so).
            if x.count == y.count, x.withBytes({ p in y.withBytes { q in p.count == 0 || memcmp(p.baseAddress!, q.baseAddress!, p.count) == 0 } }) {
                return nil
            }
            let a = x.bytes, b = y.bytes
            guard let byte = firstDifference(a, b) else { return nil }
            let bits = e.elementType.traits.bitsPerElement
            guard bits >= 8, a.count == b.count else { return "stored bytes differ at byte \(byte) (\(b.count) bytes stored, \(a.count) expected)" }
            let size = bits / 8, i = byte / size
            return "element \(i) (flat index) is \(element(b, i, s.elementType)), expected \(element(a, i, e.elementType))"
        case (.strings(let a), .strings(let b)):
            guard let i = firstDifference(a, b) else { return nil }
            return "string element \(i) differs"
        case (.binarized(let p), .binarized(let q)):
            return packed(p, q)
        case (.quantized(let p), .quantized(let q)):
            return quantized(p, q)
        default:
            return "stored as \(s.storage.kind), expected \(e.storage.kind)"
        }
    }

    /// Binarized tensors: scale mode, mask (first entry), each level's scales (first group) and
    /// sign stream (first entry of the level's active entries).
    static func packed(_ e: PackedTensor, _ s: PackedTensor) -> String? {
        if e == s { return nil }
        if e.scale != s.scale { return "scales per \(s.scale) stored, per \(e.scale) expected" }
        if e.halfScales != s.halfScales { return "scales stored as \(s.halfScales ? "float16" : "float32"), expected \(e.halfScales ? "float16" : "float32")" }
        if let i = firstDifference(e.mask, s.mask) {
            return "mask entry \(i) (flat index) is \(i < s.mask.count ? "\(s.mask[i])" : "missing") bits, expected \(i < e.mask.count ? "\(e.mask[i])" : "missing")"
        }
        if e.levels.count != s.levels.count { return "\(s.levels.count) levels stored, \(e.levels.count) expected" }
        for (k, (a, b)) in zip(e.levels, s.levels).enumerated() {
            if let g = firstDifference(a.scales.map(\.bitPattern), b.scales.map(\.bitPattern)) {
                return "level \(k + 1) scale of group \(g) is \(g < b.scales.count ? "\(b.scales[g])" : "missing"), expected \(g < a.scales.count ? "\(a.scales[g])" : "missing")"
            }
            if let w = firstDifference(a.signs, b.signs) {
                let bit = w < a.signs.count && w < b.signs.count ? (a.signs[w] ^ b.signs[w]).trailingZeroBitCount : 0
                return "level \(k + 1) sign of active entry \(w * 64 + bit) (group-major) differs"
            }
            if a.activeCounts != b.activeCounts { return "level \(k + 1) active counts differ" }
        }
        return "differs"
    }

    /// int-n and palette tensors: scheme, bits, groups, the table (first difference) and codes.
    static func quantized(_ e: QuantizedTensor, _ s: QuantizedTensor) -> String? {
        if e == s { return nil }
        if e.scheme != s.scheme || e.bits != s.bits { return "\(s.bits)-bit \(s.scheme.rawValue) stored, \(e.bits)-bit \(e.scheme.rawValue) expected" }
        if e.axis != s.axis || e.channelsPerGroup != s.channelsPerGroup {
            return "groups of \(s.channelsPerGroup) along axis \(s.axis.map(String.init) ?? "none") stored, \(e.channelsPerGroup) along \(e.axis.map(String.init) ?? "none") expected"
        }
        if e.halfValues != s.halfValues { return "values stored as \(s.halfValues ? "float16" : "float32"), expected \(e.halfValues ? "float16" : "float32")" }
        if let i = firstDifference(e.values.map(\.bitPattern), s.values.map(\.bitPattern)) {
            return "table value \(i) is \(i < s.values.count ? "\(s.values[i])" : "missing"), expected \(i < e.values.count ? "\(e.values[i])" : "missing")"
        }
        if let i = firstDifference(e.zeroPoints, s.zeroPoints) { return "zero point of group \(i) differs" }
        if let i = firstDifference(e.codes, s.codes) {
            return "code \(i) (flat index) is \(i < s.codes.count ? "\(s.codes[i])" : "missing"), expected \(i < e.codes.count ? "\(e.codes[i])" : "missing")"
        }
        return "differs"
    }

    static func element(_ bytes: [UInt8], _ i: Int, _ type: ElementType) -> String {
        let size = type.traits.bitsPerElement / 8
        guard (i + 1) * size <= bytes.count else { return "missing" }
        var v: UInt64 = 0
        for j in 0..<size { v |= UInt64(bytes[i * size + j]) << (8 * j) }
        switch type {
        case .float: return "\(Float(bitPattern: UInt32(v)))"
        case .double: return "\(Double(bitPattern: v))"
        case .float16: return "\(Float(float16Bits: UInt16(v)))"
        case .bfloat16: return "\(Float(bitPattern: UInt32(v) << 16))"
        case .int64: return "\(Int64(bitPattern: v))"
        case .int32: return "\(Int32(bitPattern: UInt32(v)))"
        default: return String(format: "0x%0\(size * 2)llx", v)
        }
    }
}
