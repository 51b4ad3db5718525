import Foundation
import MBCore
import MBFormat

/// The calibration corrections a calibrated `.mbm` records for `verify`, in binary: metadata key
/// `calibration.f32` (a blob). Schemas/mbm-format.md:
///
///     u32 count
///     count × { str output, u32 rank, u32 axis, u32 channels, channels × f32 a, channels × f32 b }
///
/// 8 bytes per channel instead of the ~22 of the JSON list (`calibration`) that files written
/// before carry; `verify` reads either.
enum CalibrationRecord {
    static let key = MetadataKey.calibrationRecord

    static func encode(_ list: [Calibration.StoredCorrection]) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(list.count))
        for c in list {
            w.string(c.output)
            w.u32(UInt32(c.rank))
            w.u32(UInt32(c.axis))
            w.u32(UInt32(c.scaleBits.count))
            for b in c.scaleBits { w.u32(b) }
            for b in c.shiftBits { w.u32(b) }
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(ByteReader.Failure) -> [Calibration.StoredCorrection] {
        do {
            return try bytes.withUnsafeBytes { try decode(raw: $0) }
        } catch let e as ByteReader.Failure {
            throw e
        } catch {
            throw ByteReader.Failure(offset: 0, message: "\(error)")
        }
    }

    static func decode(raw: UnsafeRawBufferPointer) throws(ByteReader.Failure) -> [Calibration.StoredCorrection] {
        var r = ByteReader(raw)
        let n = try r.count("correction count", minimumItemSize: 16)
        var out: [Calibration.StoredCorrection] = []
        for _ in 0..<n {
            let output = try r.string("output name")
            let rank = Int(try r.u32("rank")), axis = Int(try r.u32("axis"))
            let channels = try r.count("channel count", minimumItemSize: 8)
            var scale: [UInt32] = [], shift: [UInt32] = []
            for _ in 0..<channels { scale.append(try r.u32("scale")) }
            for _ in 0..<channels { shift.append(try r.u32("shift")) }
            out.append(Calibration.StoredCorrection(output: output, rank: rank, axis: axis, scaleBits: scale, shiftBits: shift))
        }
        guard r.isAtEnd else { throw ByteReader.Failure(offset: r.position, message: "\(r.remaining) bytes after the corrections") }
        return out
    }

    /// The recorded corrections of a file: the binary record, or the JSON list of older files;
    /// nil when the file records none.
    static func read(metadata: [MetadataEntry], path: String) throws -> [Calibration.StoredCorrection]? {
        func value(_ key: String) -> MetadataValue? { metadata.first { $0.key == key }?.value }
        if case .bytes(let bytes)? = value(key) {
            do { return try decode(bytes) } catch {
                throw ConversionError("\(path): metadata '\(key)': \(error)")
            }
        }
        if case .json(let text)? = value(MetadataKey.calibration) {
            guard let list = try? Inspect.jsonDecoder().decode([Calibration.StoredCorrection].self, from: Data(text.utf8)) else {
                throw ConversionError("\(path): metadata 'calibration' is not a list of corrections")
            }
            return list
        }
        return nil
    }
}

extension Calibration.StoredCorrection {
    init(output: String, rank: Int, axis: Int, scaleBits: [UInt32], shiftBits: [UInt32]) {
        self.output = output
        self.rank = rank
        self.axis = axis
        self.scaleBits = scaleBits
        self.shiftBits = shiftBits
    }
}
