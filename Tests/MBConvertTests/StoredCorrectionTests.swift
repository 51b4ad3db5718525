import Foundation
@testable import MBConvert
import MBCore
import MBFormat
import TestSupport
import Testing

/// Recorded calibration corrections come from a file: each one that cannot be folded into a
/// graph is named before `verify` applies it (a bad axis or mismatched counts used to index out
/// of range).
@Suite struct StoredCorrectionTests {
    static func decode(_ json: String) throws -> Calibration.StoredCorrection {
        try JSONDecoder().decode(Calibration.StoredCorrection.self, from: Data(json.utf8))
    }

    @Test func wellFormedCorrectionHasNoProblem() throws {
        let c = try Self.decode(#"{"output":"y","rank":4,"axis":1,"scaleBits":[1065353216,1065353216],"shiftBits":[0,0]}"#)
        #expect(c.problem == nil)
    }

    @Test(arguments: [
        (#"{"output":"y","rank":4,"axis":1,"scaleBits":[1065353216,1065353216],"shiftBits":[0]}"#, "2 scales but 1 shifts"),
        (#"{"output":"y","rank":4,"axis":4,"scaleBits":[1065353216],"shiftBits":[0]}"#, "axis 4 outside 0..<4"),
        (#"{"output":"y","rank":2,"axis":-1,"scaleBits":[1065353216],"shiftBits":[0]}"#, "axis -1 outside 0..<2"),
        (#"{"output":"y","rank":0,"axis":0,"scaleBits":[1065353216],"shiftBits":[0]}"#, "rank 0 outside 1...64"),
        (#"{"output":"y","rank":4,"axis":1,"scaleBits":[],"shiftBits":[]}"#, "no channels"),
        (#"{"output":"","rank":4,"axis":1,"scaleBits":[1065353216],"shiftBits":[0]}"#, "no output name"),
    ])
    func malformedCorrectionIsNamed(json: String, expected: String) throws {
        #expect(try Self.decode(json).problem == expected, "\(json)")
    }
}

/// The binary record of the corrections (`calibration.f32`) round-trips exactly, refuses a
/// damaged blob, and files written with the older JSON list still verify.
@Suite struct CalibrationRecordTests {
    @Test func binaryRecordRoundTrips() throws {
        let list = [
            Calibration.StoredCorrection(output: "conv1", rank: 4, axis: 1, scaleBits: [0x3F80_0000, 0x7F7F_FFFF, 1], shiftBits: [0, 0x8000_0000, 0xBF80_0000]),
            Calibration.StoredCorrection(output: "fc", rank: 2, axis: 1, scaleBits: [0x4000_0000], shiftBits: [0x3F00_0000]),
        ]
        let bytes = CalibrationRecord.encode(list)
        // 4 + per correction (4 + name + 12 + 8 per channel).
        #expect(bytes.count == 4 + (4 + 5 + 12 + 24) + (4 + 2 + 12 + 8))
        #expect(try CalibrationRecord.decode(bytes) == list)
        #expect(throws: ByteReader.Failure.self) { try CalibrationRecord.decode(Array(bytes.dropLast())) }
        #expect(throws: ByteReader.Failure.self) { try CalibrationRecord.decode(bytes + [0]) }
    }

    @Test func olderFilesWithTheJSONListStillVerify() throws {
        let root = SharedFixtures.repositoryRoot
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calib-record-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policy = dir.appendingPathComponent("p.txt").path, mbm = dir.appendingPathComponent("m.mbm").path
        try "version: 1\ndefault: {bits: 2, scale: channel}\n".write(toFile: policy, atomically: true, encoding: .utf8)
        var options = Conversion.Options()
        options.calibrate = root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path
        _ = try Conversion.run(model: model, policy: policy, output: mbm, options: options)
        let file = try MBMFile.open(path: mbm)
        guard case .bytes(let blob)? = file.metadataValue(MetadataKey.calibrationRecord) else {
            Issue.record("no binary calibration record"); return
        }
        #expect(file.metadataValue(MetadataKey.calibration) == nil)
        #expect(try Verify.run(onnx: model, mbm: mbm, options: Verify.Options()).passed)
        // The same file as an older mbconvert wrote it: the corrections as a JSON list.
        let list = try CalibrationRecord.decode(blob)
        let json = String(decoding: try JSONEncoder().encode(list), as: UTF8.self)
        let metadata = file.metadata.map { e in
            e.key == MetadataKey.calibrationRecord ? MetadataEntry(MetadataKey.calibration, .json(json)) : e
        }
        let old = dir.appendingPathComponent("old.mbm").path
        _ = try MBMWriter().write(model: file.model, metadata: metadata, to: old)
        let check = try Verify.run(onnx: model, mbm: old, options: Verify.Options())
        #expect(check.passed, "\(check.failures)")
        #expect(json.utf8.count > 2 * blob.count, "JSON \(json.utf8.count) bytes, binary \(blob.count)")
        print("calibration record for tiny_cnn: \(blob.count) bytes binary, \(json.utf8.count) bytes as the older JSON list")
    }
}
