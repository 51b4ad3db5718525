import Foundation
import MBCore
import MBFormat

/// What `mbconvert inspect model.mbm` reports.
public struct MBMSummary: Codable, Sendable {
    public struct Section: Codable, Sendable {
        public var tag: String
        public var offset: Int
        public var bytes: Int
        public var required: Bool
        public var crc32: String
    }

    public struct Tensor: Codable, Sendable {
        public var name: String
        public var type: String
        public var shape: [Int]
        public var encoding: String
        /// Payload bytes in the file (signs, scales and mask for binarized tensors).
        public var bytes: Int
        /// Stored bits per element, everything in the payload counted.
        public var bitsPerElement: Double
        /// Binarized only.
        public var levels: Int?
        public var scale: String?
        /// Binarized only: fraction of entries with 1, 2, ... bits.
        public var fractions: [Double]?
        public var averageBits: Double?
        public var maskBytes: Int?
        /// Binarized with a structured mask stored one width per block: the block sizes.
        public var maskBlocks: [Int]?
    }

    public var file: String
    public var fileBytes: Int
    public var formatVersion: String
    public var checksums: String
    public var sections: [Section]
    public var metadata: [String: String]
    public var policy: String?
    public var opsets: [String: Int64]
    public var inputs: [ModelSummary.Value]
    public var outputs: [ModelSummary.Value]
    public var operators: [ModelSummary.OpCount]
    public var tensors: [Tensor]
    public var binarizedElements: Int
    public var binarizedBytes: Int
    /// Bits per binarized weight over all binarized tensors, everything counted.
    public var binarizedBitsPerWeight: Double?
}

extension MBMSummary {
    public init(file f: MBMFile) {
        file = f.path
        fileBytes = f.fileBytes
        formatVersion = "\(f.majorVersion).\(f.minorVersion)"
        checksums = f.checksumsVerified ? "verified (CRC-32 of header, section table and every section)" : "not verified"
        sections = f.sections.map { Section(tag: $0.tag.description, offset: $0.offset, bytes: $0.length, required: $0.isRequired, crc32: String(format: "%08x", $0.crc)) }
        var meta: [String: String] = [:]
        for e in f.metadata where e.key != MetadataKey.policyText && e.key != MetadataKey.layerStatistics {
            switch e.value {
            case .string(let s), .json(let s): meta[e.key] = s
            case .int(let i): meta[e.key] = String(i)
            case .double(let d): meta[e.key] = String(d)
            // Digests in hex; larger blobs (the calibration record) by their size only.
            case .bytes(let b): meta[e.key] = b.count <= 64 ? SHA256.hex(b) : "\(b.count) bytes (binary)"
            }
        }
        metadata = meta
        if case .string(let p)? = f.metadataValue(MetadataKey.policyText) { policy = p } else { policy = nil }
        opsets = Dictionary(f.model.opsets.map { (OperatorDomain.isDefault($0.domain) ? OperatorDomain.onnx : $0.domain, $0.version) }, uniquingKeysWith: { a, _ in a })
        func value(_ v: IRValueInfo) -> ModelSummary.Value {
            ModelSummary.Value(name: v.name, type: v.elementType.map { ModelSummary.elementName($0.rawValue) } ?? "unknown",
                               shape: v.shape?.map(\.description))
        }
        inputs = f.model.graph.inputs.map(value)
        outputs = f.model.graph.outputs.map(value)
        var counts: [String: Int] = [:]
        func count(_ g: IRGraph) {
            for n in g.nodes {
                counts[n.domain.isEmpty ? n.opType : "\(n.domain).\(n.opType)", default: 0] += 1
            }
        }
        count(f.model.graph)
        operators = ModelSummary.sorted(counts)
        var binElements = 0, binBytes = 0
        tensors = f.tensors.map { t in
            let n = t.elementCount
            var out = Tensor(name: t.name, type: ModelSummary.elementName(t.elementType.rawValue), shape: t.shape,
                             encoding: t.payload.encoding.description, bytes: t.storedBytes,
                             bitsPerElement: n == 0 ? 0 : Double(t.storedBytes * 8) / Double(n))
            if case .binarized(let b) = t.payload {
                let levels = b.levels.count
                out.levels = levels
                out.scale = b.scale.description
                let atLeast = b.levels.map(\.bitCount)
                out.fractions = (0..<levels).map { k in
                    n == 0 ? 0 : Double(atLeast[k] - (k + 1 < levels ? atLeast[k + 1] : 0)) / Double(n)
                }
                out.averageBits = n == 0 ? 0 : Double(atLeast.reduce(0, +)) / Double(n)
                out.maskBytes = t.maskBytes
                out.maskBlocks = t.maskBlocks
                binElements += n
                binBytes += t.storedBytes
            }
            return out
        }
        binarizedElements = binElements
        binarizedBytes = binBytes
        binarizedBitsPerWeight = binElements == 0 ? nil : Double(binBytes * 8) / Double(binElements)
    }

    public func renderText() -> String {
        var out = ""
        func line(_ s: String = "") { out += s + "\n" }
        line("model:     \(file) (\(formatBytes(fileBytes)), .mbm \(formatVersion))")
        line("checksums: \(checksums)")
        for key in metadata.keys.sorted() { line("  \(key): \(metadata[key]!)") }
        line("opsets:    " + opsets.keys.sorted().map { "\($0) \(opsets[$0]!)" }.joined(separator: ", "))
        line()
        line("sections:")
        out += table(header: ["tag", "offset", "bytes", "crc32"], rows: sections.map { [$0.tag, String($0.offset), String($0.bytes), $0.crc32] }, rightAligned: [1, 2])
        line()
        line("inputs:")
        for v in inputs { line("  \(v.name)  \(v.type)  \(v.shape.map { "[" + $0.joined(separator: ", ") + "]" } ?? "(rank unknown)")") }
        line("outputs:")
        for v in outputs { line("  \(v.name)  \(v.type)  \(v.shape.map { "[" + $0.joined(separator: ", ") + "]" } ?? "(rank unknown)")") }
        line()
        line("operators: " + operators.map { "\($0.op) \($0.count)" }.joined(separator: ", "))
        line()
        line("tensors: \(tensors.count)")
        let rows = tensors.map { t -> [String] in
            let mix = t.fractions.map { f in f.enumerated().map { String(format: "%d:%.3f", $0.offset + 1, $0.element) }.joined(separator: " ") } ?? ""
            let encoding = t.encoding + (t.maskBlocks.map { " (mask per " + $0.map(String.init).joined(separator: "x") + ")" } ?? "")
            return [t.name, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", t.type, encoding, t.scale ?? "", mix,
                    t.averageBits.map { String(format: "%.3f", $0) } ?? "", String(t.bytes), String(format: "%.3f", t.bitsPerElement)]
        }
        out += table(header: ["name", "shape", "type", "encoding", "scale", "realized P", "avg bits", "bytes", "bits/elem"], rows: rows, rightAligned: [7, 8])
        line()
        if let b = binarizedBitsPerWeight {
            line(String(format: "binarized: %d weights in %d bytes: %.4f bits per weight (signs, scales and masks counted)", binarizedElements, binarizedBytes, b))
        } else {
            line("binarized: none")
        }
        if let policy {
            line()
            line("policy:")
            for l in policy.split(separator: "\n", omittingEmptySubsequences: false) { line("  | " + l) }
        }
        return out
    }
}

extension Inspect {
    /// Whether the file starts with the `.mbm` magic.
    public static func isMBM(path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: MBMLayout.magic.count)) ?? Data()
        return [UInt8](head) == MBMLayout.magic
    }

    public static func summarizeMBM(path: String, verifyChecksums: Bool = true) throws -> MBMSummary {
        MBMSummary(file: try MBMFile.open(path: path, options: .init(verifyChecksums: verifyChecksums)))
    }
}
