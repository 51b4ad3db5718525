import Foundation
import MBCore
import MBRuntime
import TestSupport
import XCTest

/// Cast and CastLike to and from ONNX's float8, float4, float8e8m0 and 4-/2-bit integer types in
/// the runtime, against `LowPrecision` (the reference) and values onnx's reference Cast gives;
/// constants of those types loaded from their packed bytes; a packed tensor whose byte count does
/// not match its shape refused with its name.
final class LowPrecisionCastTests: XCTestCase {
    /// y = Cast(x, to) with the given attributes, x a float input of `count` elements, then
    /// z = Cast(y, float) so the graph output is float whatever `to` is.
    static func castModel(to: ElementType, count: Int, attributes: [IRAttribute] = []) -> IRModel {
        let nodes = [
            IRNode(name: "cast", opType: "Cast", inputs: ["x"], outputs: ["y"], attributes: [IRAttribute(name: "to", value: .int(Int64(to.rawValue)))] + attributes),
            IRNode(name: "back", opType: "Cast", inputs: ["y"], outputs: ["z"], attributes: [IRAttribute(name: "to", value: .int(Int64(ElementType.float.rawValue)))]),
        ]
        return IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: [.fixed(Int64(count))])],
                                      outputs: [IRValueInfo(name: "z", elementType: .float, shape: nil)], nodes: nodes),
                       opsets: [IROpset(domain: "", version: 25)])
    }

    static func run(_ ir: IRModel, _ x: [Float]) throws -> [Float] {
        let model = try MBModel(ir: ir)
        return try XCTUnwrap(try model.makeSession().run(["x": MBTensor(shape: [x.count], floats: x)])["z"]).floats
    }

    /// Bitwise comparison (NaN equals NaN, -0 differs from 0).
    static func assertSame(_ got: [Float], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (k, (g, w)) in zip(got, want).enumerated() where !(g.isNaN && w.isNaN) && g.bitPattern != w.bitPattern {
            XCTFail("\(what): element \(k): got \(g), want \(w)", file: file, line: line)
        }
    }

    static let x: [Float] = [0, -0.0, .nan, .infinity, -.infinity, 464, 465, 1e6, 0.3, -2.5, 0x1p-10]

    /// NaN and infinities per saturation mode, overflow and ties, as onnx's reference gives them.
    func testFloat8PerSaturationMode() throws {
        let cases: [(ElementType, Bool, [Float])] = [
            (.float8e4m3fn, true, [0, -0.0, .nan, 448, -448, 448, 448, 448, 0.3125, -2.5, 0]),
            (.float8e4m3fn, false, [0, -0.0, .nan, .nan, .nan, 448, .nan, .nan, 0.3125, -2.5, 0]),
            (.float8e4m3fnuz, true, [0, 0, .nan, 240, -240, 240, 240, 240, 0.3125, -2.5, 0x1p-10]),
            (.float8e4m3fnuz, false, [0, 0, .nan, .nan, .nan, .nan, .nan, .nan, 0.3125, -2.5, 0x1p-10]),
            (.float8e5m2, true, [0, -0.0, .nan, 57344, -57344, 448, 448, 57344, 0.3125, -2.5, 0x1p-10]),
            (.float8e5m2, false, [0, -0.0, .nan, .infinity, -.infinity, 448, 448, .infinity, 0.3125, -2.5, 0x1p-10]),
            (.float8e5m2fnuz, true, [0, 0, .nan, 57344, -57344, 448, 448, 57344, 0.3125, -2.5, 0x1p-10]),
            (.float8e5m2fnuz, false, [0, 0, .nan, .nan, .nan, 448, 448, .nan, 0.3125, -2.5, 0x1p-10]),
            (.float4e2m1, true, [0, -0.0, -0.0, 6, -6, 6, 6, 6, 0.5, -2, 0]),
        ]
        for (type, saturate, want) in cases {
            let got = try Self.run(Self.castModel(to: type, count: Self.x.count, attributes: [IRAttribute(name: "saturate", value: .int(saturate ? 1 : 0))]), Self.x)
            Self.assertSame(got, want, "Cast to \(type.name) saturate=\(saturate)")
        }
    }

    func testFloat8E8M0RoundModes() throws {
        let x: [Float] = [1.5, 1.49, 3, 0.75, 0x1.8p127, .infinity]
        let cases: [(String, Int64, [Float])] = [
            ("up", 1, [2, 2, 4, 1, 0x1p127, .nan]),
            ("down", 1, [1, 1, 2, 0.5, 0x1p127, .nan]),
            ("nearest", 1, [2, 1, 4, 1, 0x1p127, .nan]),
            ("up", 0, [2, 2, 4, 1, .nan, .nan]),
        ]
        for (mode, saturate, want) in cases {
            let ir = Self.castModel(to: .float8e8m0, count: x.count, attributes: [IRAttribute(name: "round_mode", value: .string(Array(mode.utf8))),
                                                                                  IRAttribute(name: "saturate", value: .int(saturate))])
            Self.assertSame(try Self.run(ir, x), want, "Cast to float8e8m0 round_mode=\(mode) saturate=\(saturate)")
        }
        let bad = Self.castModel(to: .float8e8m0, count: 1, attributes: [IRAttribute(name: "round_mode", value: .string(Array("sideways".utf8)))])
        XCTAssertThrowsError(try MBModel(ir: bad)) { XCTAssertTrue("\($0)".contains("round_mode 'sideways'"), "\($0)") }
    }

    /// Every Cast target, saturate and round_mode against onnx's reference evaluator on 40,000
    /// seeded inputs (random bit patterns: NaNs, infinities, subnormals; values around each range;
    /// exact ties), bit for bit (Scripts/crosscheck/low_precision_casts.py writes them).
    func testMatchesONNXReferenceOnSeededInputs() throws {
        let python: String
        do { python = try Prerequisites.requirePython("the low-precision Cast cross-check", "onnx", "numpy") } catch let m as Prerequisites.Missing { throw Prerequisites.skipOrFail(m) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("low-precision-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.runSystem("/usr/bin/env", [python, "Scripts/crosscheck/low_precision_casts.py", dir.path], in: SharedFixtures.repositoryRoot)
        XCTAssertEqual(r.status, 0, "\(r)")
        let x = try NPY.read(path: dir.appendingPathComponent("x.npy").path).floatValues()
        let cases = try String(contentsOf: dir.appendingPathComponent("cases.txt"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(cases.count, 20)
        for line in cases {
            let f = line.split(separator: " ").map(String.init)
            let to = try XCTUnwrap(ElementType(rawValue: try XCTUnwrap(Int32(f[1]))))
            let attributes = [IRAttribute(name: "saturate", value: .int(try XCTUnwrap(Int64(f[2])))),
                              IRAttribute(name: "round_mode", value: .string(Array(f[3].utf8)))]
            let want = try NPY.read(path: dir.appendingPathComponent(f[0]).path).floatValues()
            let got = try Self.run(Self.castModel(to: to, count: x.count, attributes: attributes), x)
            var mismatches = 0
            for k in x.indices where !(got[k].isNaN && want[k].isNaN) && got[k].bitPattern != want[k].bitPattern {
                if mismatches < 5 { XCTFail("\(f[0]): x = \(x[k]) (0x\(String(x[k].bitPattern, radix: 16))): got \(got[k]), onnx gives \(want[k])") }
                mismatches += 1
            }
            XCTAssertEqual(mismatches, 0, "\(f[0]): \(mismatches) of \(x.count) differ")
        }
    }

    /// From a float: truncated toward zero, 0 outside the range (onnx's reference); from an
    /// integer: wrapped to the width.
    func testSmallIntegers() throws {
        let x: [Float] = [-9, -8, -1.5, 0.5, 2.7, 7, 8, 15, 16]
        let cases: [(ElementType, [Float])] = [
            (.int4, [0, -8, -1, 0, 2, 7, 0, 0, 0]),
            (.uint4, [0, 0, 0, 0, 2, 7, 8, 15, 0]),
            (.int2, [0, 0, -1, 0, 0, 0, 0, 0, 0]),
            (.uint2, [0, 0, 0, 0, 2, 0, 0, 0, 0]),
        ]
        for (type, want) in cases {
            Self.assertSame(try Self.run(Self.castModel(to: type, count: x.count), x), want, "Cast float to \(type.name)")
        }
        // int32 → int4 wraps: CastLike against an int4 constant.
        let like = IRTensor(name: "like", elementType: .int4, shape: [1], storage: .dense(ByteSlice(copying: [0x0F])))
        let ints = IRTensor(name: "ints", elementType: .int32, shape: [4], storage: .dense(ByteSlice(copying: [Int32(9), -9, 17, 300].flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } })))
        let ir = IRModel(graph: IRGraph(name: "g", inputs: [], outputs: [IRValueInfo(name: "z", elementType: .int4, shape: nil)],
                                        nodes: [IRNode(name: "c", opType: "CastLike", inputs: ["ints", "like"], outputs: ["z"])], constants: [like, ints]),
                         opsets: [IROpset(domain: "", version: 25)])
        XCTAssertEqual(try XCTUnwrap(try MBModel(ir: ir).makeSession().run([:])["z"]).int64s, [-7, 7, 1, -4])
    }

    /// QuantizeLinear to int4 saturates to -8...7; to float8e4m3fn it rounds as Cast, per `saturate`.
    func testQuantizeLinearToSmallTypes() throws {
        func run(zero: IRTensor, scale: Float, saturate: Int64?, _ x: [Float]) throws -> MBTensor {
            let s = IRTensor(name: "s", elementType: .float, shape: [], storage: .dense(ByteSlice(copying: withUnsafeBytes(of: scale.bitPattern.littleEndian) { Array($0) })))
            let attributes = saturate.map { [IRAttribute(name: "saturate", value: .int($0))] } ?? []
            let ir = IRModel(graph: IRGraph(name: "g", inputs: [IRValueInfo(name: "x", elementType: .float, shape: [.fixed(Int64(x.count))])],
                                            outputs: [IRValueInfo(name: "y", elementType: zero.elementType, shape: nil)],
                                            nodes: [IRNode(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["y"], attributes: attributes)],
                                            constants: [s, zero]),
                             opsets: [IROpset(domain: "", version: 21)])
            return try XCTUnwrap(try MBModel(ir: ir).makeSession().run(["x": MBTensor(shape: [x.count], floats: x)])["y"])
        }
        let int4Zero = IRTensor(name: "z", elementType: .int4, shape: [], storage: .dense(ByteSlice(copying: [0x01])))
        XCTAssertEqual(try run(zero: int4Zero, scale: 2, saturate: nil, [-20, 3.3, 100, 5]).int64s, [-8, 3, 7, 3])
        let f8Zero = IRTensor(name: "z", elementType: .float8e4m3fn, shape: [], storage: .dense(ByteSlice(copying: [0x00])))
        Self.assertSame(try run(zero: f8Zero, scale: 0.5, saturate: nil, [1000, 0.15, -3]).floats, [448, 0.3125, -6], "QuantizeLinear float8e4m3fn saturate")
        Self.assertSame(try run(zero: f8Zero, scale: 0.5, saturate: 0, [1000, 0.15, -3]).floats, [.nan, 0.3125, -6], "QuantizeLinear float8e4m3fn saturate=0")
    }

    /// .npy inputs of the small types, as ml_dtypes saves them (one code per byte, '|V1'), and
    /// bfloat16 as uint16 bit patterns: taken as the declared type says.
    func testNPYInputsOfDeclaredSmallTypes() throws {
        let bytes = try NPYArray(elementType: .uint8, shape: [4], data: [15, 8, 7, 3])
        XCTAssertEqual(try MBTensor(npy: bytes, declared: .int4).int64s, [-1, -8, 7, 3])
        XCTAssertEqual(try MBTensor(npy: bytes, declared: .uint4).int64s, [15, 8, 7, 3])
        XCTAssertEqual(try MBTensor(npy: bytes, declared: .int2).int64s, [-1, 0, -1, -1])
        XCTAssertEqual(try MBTensor(npy: bytes, declared: nil).int64s, [15, 8, 7, 3])
        let f8 = try NPYArray(elementType: .uint8, shape: [2], data: [126, 176])
        XCTAssertEqual(try MBTensor(npy: f8, declared: .float8e4m3fn).floats, [448, -0.5])
        XCTAssertEqual(try MBTensor(npy: try NPYArray(elementType: .uint8, shape: [2], data: [0x0F, 0x01]), declared: .float4e2m1).floats, [-6, 0.5])
        let bf = try NPYArray(elementType: .uint16, shape: [2], data: [0x80, 0x3F, 0x20, 0xC0])
        XCTAssertEqual(try MBTensor(npy: bf, declared: .bfloat16).floats, [1, -2.5])
        XCTAssertEqual(try MBTensor(npy: bf, declared: nil).int64s, [16256, 49184])
    }

    /// Packed constants decode exactly: int4 [-8, 7, 1] from 0x78 0x01; float4e2m1 [6, -0.5] from 0x97.
    func testPackedConstantsLoad() throws {
        let i4 = try MBTensor(irTensor: IRTensor(name: "i4", elementType: .int4, shape: [3], storage: .dense(ByteSlice(copying: [0x78, 0x01]))))
        XCTAssertEqual(i4.int64s, [-8, 7, 1])
        let u2 = try MBTensor(irTensor: IRTensor(name: "u2", elementType: .uint2, shape: [5], storage: .dense(ByteSlice(copying: [0b1110_0100, 0b11]))))
        XCTAssertEqual(u2.int64s, [0, 1, 2, 3, 3])
        let f4 = try MBTensor(irTensor: IRTensor(name: "f4", elementType: .float4e2m1, shape: [2], storage: .dense(ByteSlice(copying: [0x97]))))
        XCTAssertEqual(f4.floats, [6, -0.5])
        let f8 = try MBTensor(irTensor: IRTensor(name: "f8", elementType: .float8e4m3fn, shape: [3], storage: .dense(ByteSlice(copying: [0x7E, 0xFF, 0x01]))))
        Self.assertSame(f8.floats, [448, .nan, 0x1p-9], "float8e4m3fn constant")
        let u64 = try MBTensor(irTensor: IRTensor(name: "u64", elementType: .uint64, shape: [1], storage: .dense(ByteSlice(copying: [UInt8](repeating: 0xFF, count: 8)))))
        XCTAssertEqual(u64.elementType, .int64)
        XCTAssertEqual(u64.int64s, [-1])  // 2^64 - 1 held as its bit pattern
    }

    /// A packed tensor whose bytes do not match its shape: refused, naming tensor, shape and need.
    func testPackedByteCountMismatchIsRefused() {
        for (type, shape, bytes, need) in [(ElementType.int4, [3], 1, 2), (.uint4, [4], 3, 2), (.int2, [5], 1, 2), (.float4e2m1, [2], 2, 1), (.float8e5m2, [2], 3, 2)] {
            let t = IRTensor(name: "w", elementType: type, shape: shape, storage: .dense(ByteSlice(copying: [UInt8](repeating: 0, count: bytes))))
            XCTAssertThrowsError(try MBTensor(irTensor: t)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("tensor 'w'") && text.contains("holds \(bytes) bytes") && text.contains("of \(type.name) needs \(need)"), text)
            }
        }
    }
}
