import Foundation
import MBConvert
import MBCore
import MBFormat
import TestSupport
import Testing

/// `verify` must fail on every changed byte that affects results, as a buggy writer or a
/// tampered download would leave the file: one bit flipped in a stored tensor (or the graph),
/// then every CRC recomputed so the file is intact to the reader. For each kind of stored
/// tensor, several files are tampered at positions spread over each tensor's bytes; every one
/// must fail `verify` (or be refused by the reader) with a message naming the tensor.
@Suite struct TamperingTests {
    static let root = SharedFixtures.repositoryRoot
    static let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
    static let input = "input=" + root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path

    /// Rewrites the declared length and every CRC (sections, table, header), per the spec, with
    /// MBFormat's CRC-32: the file is then intact to the reader up to the change that matters.
    static func fixCRCs(_ bytes: inout [UInt8]) {
        func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        func get64(_ at: Int) -> Int { Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }) }
        for i in 0..<8 { bytes[16 + i] = UInt8(truncatingIfNeeded: UInt64(bytes.count) >> (8 * UInt64(i))) }
        let table = get64(24)
        let count = Int(bytes[32]) | Int(bytes[33]) << 8
        for s in 0..<count {
            let e = table + 32 * s
            let offset = get64(e + 8), length = get64(e + 16)
            put32(CRC32.checksum(Array(bytes[offset..<(offset + length)])), e + 24)
        }
        put32(CRC32.checksum(Array(bytes[table..<(table + 32 * count)])), 36)
        put32(CRC32.checksum(Array(bytes[0..<60])), 60)
    }

    /// Bit positions spread over `range`: first, last and `spread - 2` between (one bit each).
    static func positions(in range: Range<Int>, spread: Int) -> [(byte: Int, bit: Int)] {
        guard !range.isEmpty else { return [] }
        let n = min(spread, range.count)
        return (0..<n).map { i in
            let byte = range.lowerBound + (n == 1 ? 0 : i * (range.count - 1) / (n - 1))
            return (byte, (i * 3 + 1) % 8)
        }
    }

    struct Kind { var label: String; var tensors: [(name: String, range: Range<Int>)] }

    /// What a converted tiny_cnn holds, by kind: binarized scales, sign streams and masks; kept
    /// float32 and float16 weights; raw float32 biases and BatchNormalization parameters;
    /// calibrated tensors (folded into BatchNormalization, and Mul/Add after the Gemm); the graph.
    static func kinds(_ r: SpecReader) -> [Kind] {
        let binarized = r.tensors.filter { $0.encoding == 2 }
        let raw = r.tensors.filter { $0.encoding == 0 }
        let calibrated = raw.filter { $0.name.contains(".calibrated.") || $0.name.contains(".calibration.") }
        let weights = raw.filter { $0.name.hasSuffix(".weight") }
        return [
            Kind(label: "binarized scales", tensors: binarized.map { ($0.name, $0.scalesRange) }),
            Kind(label: "binarized signs", tensors: binarized.map { ($0.name, $0.signsRange) }),
            Kind(label: "binarized mask (rANS)", tensors: binarized.filter { $0.maskCoding == 1 }.map { ($0.name, $0.maskRange) }),
            Kind(label: "kept float32 weight", tensors: weights.filter { $0.elementType == 1 }.map { ($0.name, $0.offset..<($0.offset + $0.length)) }),
            Kind(label: "kept float16 weight", tensors: weights.filter { $0.elementType == 10 }.map { ($0.name, $0.offset..<($0.offset + $0.length)) }),
            Kind(label: "float32 bias / BatchNormalization", tensors: raw.filter { !$0.name.hasSuffix(".weight") && !calibrated.map(\.name).contains($0.name) }
                .map { ($0.name, $0.offset..<($0.offset + $0.length)) }),
            Kind(label: "calibrated (folded into BatchNormalization)", tensors: calibrated.filter { $0.name.contains(".calibrated.") }.map { ($0.name, $0.offset..<($0.offset + $0.length)) }),
            Kind(label: "calibrated (Mul/Add after the layer)", tensors: calibrated.filter { $0.name.contains(".calibration.") }.map { ($0.name, $0.offset..<($0.offset + $0.length)) }),
        ]
    }

    struct Outcome { var kind: String; var files = 0; var caught = 0; var named = 0; var example = ""; var escaped: [String] = [] }

    /// Converts tiny_cnn with `policy` (and calibration inputs when given), tampers, verifies.
    static func tamper(policy: String, calibrate: Bool, tensorsPerKind: Int, spread: Int) throws -> [Outcome] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tamper-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let mbm = dir.appendingPathComponent("m.mbm").path
        var options = Conversion.Options()
        options.threads = 2
        if calibrate { options.calibrate = root.appendingPathComponent("Examples/models/tiny_cnn.input.npy").path }
        _ = try Conversion.run(model: model, policy: root.appendingPathComponent("Examples/policies/\(policy)").path, output: mbm, options: options)
        var verifyOptions = Verify.Options()
        verifyOptions.inputs = [input]
        let clean = try Verify.run(onnx: model, mbm: mbm, options: verifyOptions)
        #expect(clean.passed, "\(policy): the untampered file must verify: \(clean.failures)")

        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mbm)))
        let reader = SpecReader(bytes: original)
        var outcomes: [Outcome] = []
        var kinds = Self.kinds(reader)
        let graph = reader.section("GRPH")
        kinds.append(Kind(label: "graph (nodes, attributes)", tensors: [("GRPH", graph.offset..<(graph.offset + graph.length))]))
        for kind in kinds where !kind.tensors.isEmpty {
            var o = Outcome(kind: kind.label)
            // At most `tensorsPerKind` tensors of each kind, spread over the list (a debug-build
            // verify is about half a second; the kinds, not the count, are what must be covered).
            let n = min(tensorsPerKind, kind.tensors.count)
            let picked = (0..<n).map { kind.tensors[n == 1 ? 0 : $0 * (kind.tensors.count - 1) / (n - 1)] }
            for (name, range) in picked {
                for (byte, bit) in positions(in: range, spread: kind.label.hasPrefix("graph") ? 4 * spread : spread) {
                    var bytes = original
                    bytes[byte] ^= 1 << UInt8(bit)
                    fixCRCs(&bytes)
                    let path = dir.appendingPathComponent("t.mbm").path
                    try Data(bytes).write(to: URL(fileURLWithPath: path))
                    o.files += 1
                    let message: String
                    do {
                        let r = try Verify.run(onnx: model, mbm: path, options: verifyOptions)
                        if r.passed { o.escaped.append("\(name) byte \(byte) bit \(bit)"); continue }
                        message = r.failures.joined(separator: " | ")
                    } catch {
                        message = "\(error)"  // the reader refused the file
                    }
                    o.caught += 1
                    if name == "GRPH" || message.contains("'\(name)'") { o.named += 1 } else { o.escaped.append("\(name) byte \(byte): caught, but the message does not name it: \(message)") }
                    if o.example.isEmpty { o.example = message }
                }
            }
            outcomes.append(o)
        }
        return outcomes
    }

    static func report(_ policy: String, _ outcomes: [Outcome]) {
        for o in outcomes {
            print("tampering \(policy): \(o.kind): \(o.caught) of \(o.files) files caught, \(o.named) name the tensor; e.g. \(o.example.prefix(220))")
        }
    }

    /// alexnet-paper with calibration: every weight binarized (rANS masks), biases and
    /// BatchNormalization raw, corrections folded into BatchNormalization (the convs) and stored
    /// as Mul/Add (the Gemm); post-training: float32 and float16 kept weights, channel scales.
    @Test(arguments: [("alexnet-paper.txt", true), ("post-training.txt", false)])
    func everyFlippedBitFailsVerify(policy: String, calibrate: Bool) throws {
        let outcomes = try Self.tamper(policy: policy, calibrate: calibrate, tensorsPerKind: 5, spread: 2)
        Self.report(policy + (calibrate ? " --calibrate" : ""), outcomes)
        for o in outcomes {
            #expect(o.files > 0, "\(policy): no \(o.kind) tampered")
            #expect(o.escaped.isEmpty, "\(policy) \(o.kind): \(o.escaped.count) of \(o.files) tampered files were not caught or not named:\n\(o.escaped.joined(separator: "\n"))")
        }
        let labels = Set(outcomes.filter { $0.files > 0 }.map(\.kind))
        let expected: Set<String> = calibrate
            ? ["binarized scales", "binarized signs", "binarized mask (rANS)", "float32 bias / BatchNormalization",
               "calibrated (folded into BatchNormalization)", "calibrated (Mul/Add after the layer)", "graph (nodes, attributes)"]
            : ["binarized scales", "binarized signs", "binarized mask (rANS)", "kept float32 weight", "kept float16 weight", "float32 bias / BatchNormalization", "graph (nodes, attributes)"]
        #expect(labels == expected, "\(policy): tensor kinds tampered \(labels.sorted())")
    }
}
