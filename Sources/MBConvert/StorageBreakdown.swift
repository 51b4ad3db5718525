import Foundation
import MBCore
import MBFormat

/// Where a `.mbm` file's bytes go, per tensor and per part (sign bits, masks, scales, raw
/// elements), with what the file records about its conversion (policy text, layer statistics):
/// what the HTML report draws. Read from the file itself, so every byte is counted.
public struct StorageBreakdown: Codable, Sendable {
    public struct Tensor: Codable, Sendable {
        public var name: String
        public var encoding: String
        public var elements: Int
        /// Bytes the element type takes in the ONNX model (4 per float32 weight).
        public var sourceBytes: Int
        public var storedBytes: Int
        /// Binarized: the sign stream of every level, the mask stream, the scales; the rest of
        /// the payload (level counts, alignment) is `otherBytes`. Raw tensors: all in `rawBytes`.
        public var signBytes = 0
        public var maskBytes = 0
        public var scaleBytes = 0
        public var rawBytes = 0
        public var otherBytes = 0
        /// `int:` and `palette:` tensors: the packed n-bit codes, and the per-group tables (scales
        /// and zero points, or palette values) with their alignment.
        public var codeBytes = 0
        public var tableBytes = 0
    }

    public var file: String
    public var fileBytes: Int
    public var tensors: [Tensor]
    /// Graph, metadata, headers and checksums: the file less every tensor payload.
    public var structureBytes: Int
    public var policyText: String?
    /// The per-layer statistics the conversion recorded.
    public var layers: [ConversionReport.Layer]?

    public static func read(path: String) throws -> StorageBreakdown {
        let f: MBMFile
        do { f = try MBMFile.open(path: path) } catch { throw ConversionError(error) }
        let tensors = f.tensors.map { t -> Tensor in
            let n = t.elementCount
            var out = Tensor(name: t.name, encoding: t.payload.encoding.description, elements: n,
                             sourceBytes: t.elementType.rawByteCount(elements: n) ?? 0, storedBytes: t.storedBytes)
            switch t.payload {
            case .binarized(let b):
                out.signBytes = b.levels.reduce(0) { $0 + ($1.bitCount + 7) / 8 }
                out.scaleBytes = b.levels.reduce(0) { $0 + $1.scales.count } * (b.halfScales ? 2 : 4)
                out.maskBytes = t.maskBytes
                out.otherBytes = max(0, t.storedBytes - out.signBytes - out.scaleBytes - out.maskBytes)
            case .quantized(let q):
                out.codeBytes = (q.count * q.bits + 63) / 64 * 8
                out.tableBytes = max(0, t.storedBytes - out.codeBytes)
            case .raw, .strings:
                out.rawBytes = t.storedBytes
            }
            return out
        }
        var policy: String?
        if case .string(let p)? = f.metadataValue(MetadataKey.policyText) { policy = p }
        var layers: [ConversionReport.Layer]?
        if case .json(let text)? = f.metadataValue(MetadataKey.layerStatistics) {
            layers = try? Inspect.jsonDecoder().decode([ConversionReport.Layer].self, from: Data(text.utf8))
        }
        return StorageBreakdown(file: path, fileBytes: f.fileBytes, tensors: tensors,
                                structureBytes: max(0, f.fileBytes - tensors.reduce(0) { $0 + $1.storedBytes }),
                                policyText: policy, layers: layers)
    }
}
