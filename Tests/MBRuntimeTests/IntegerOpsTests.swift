import Foundation
import MBCore
import MBRuntime
import TestSupport
import XCTest

/// ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul and the contrib MatMulNBits against
/// their definitions written out plainly here (exact integers; named tolerances for the float
/// products), on seeded shapes; zero points of the wrong type or shape refused with their name.
final class IntegerOpsTests: XCTestCase {
    // MARK: Model building

    static func constant(_ name: String, _ type: ElementType, _ shape: [Int], _ values: [Int]) -> IRTensor {
        let bytes: [UInt8]
        switch type {
        case .uint8, .int8: bytes = values.map { UInt8(truncatingIfNeeded: $0) }
        case .int32: bytes = values.flatMap { withUnsafeBytes(of: Int32($0).littleEndian) { Array($0) } }
        default: fatalError("constant of \(type)")
        }
        return IRTensor(name: name, elementType: type, shape: shape, storage: .dense(ByteSlice(copying: bytes)))
    }

    static func floats(_ name: String, _ shape: [Int], _ values: [Float], as type: ElementType = .float) -> IRTensor {
        IRTensor(name: name, shape: shape, floats: values, as: type)!
    }

    /// One node over constants (and float input "a" when given), output "y".
    static func run(_ op: String, domain: String = "", inputs: [String], constants: [IRTensor], attributes: [IRAttribute] = [],
                    output: ElementType, a: MBTensor? = nil) throws -> MBTensor {
        let graphInputs = a.map { [IRValueInfo(name: "a", elementType: .float, shape: $0.shape.map { .fixed(Int64($0)) })] } ?? []
        var opsets = [IROpset(domain: "", version: 21)]
        if !domain.isEmpty { opsets.append(IROpset(domain: domain, version: 1)) }
        let ir = IRModel(graph: IRGraph(name: "g", inputs: graphInputs, outputs: [IRValueInfo(name: "y", elementType: output, shape: nil)],
                                        nodes: [IRNode(name: "n", opType: op, domain: domain, inputs: inputs, outputs: ["y"], attributes: attributes)],
                                        constants: constants),
                         opsets: opsets)
        let feeds = a.map { ["a": $0] } ?? [:]
        let outputs = try MBModel(ir: ir).makeSession().run(feeds)
        return try XCTUnwrap(outputs["y"])
    }

    static func ints(_ name: String, _ values: [Int]) -> IRAttribute { IRAttribute(name: name, value: .ints(values.map(Int64.init))) }

    // MARK: Definitions

    struct ConvCase: CustomStringConvertible {
        var batch = 1, inC = 2, outC = 2, group = 1, h = 5, w = 6, kh = 3, kw = 2
        var stride = [1, 1], dilation = [1, 1], pads = [0, 0, 0, 0]
        var oh: Int { (h + pads[0] + pads[2] - (kh - 1) * dilation[0] - 1) / stride[0] + 1 }
        var ow: Int { (w + pads[1] + pads[3] - (kw - 1) * dilation[1] - 1) / stride[1] + 1 }
        var description: String { "N\(batch) C\(inC)->\(outC) g\(group) \(h)x\(w) k\(kh)x\(kw) s\(stride) d\(dilation) p\(pads)" }
        var attributes: [IRAttribute] {
            [IntegerOpsTests.ints("strides", stride), IntegerOpsTests.ints("dilations", dilation), IntegerOpsTests.ints("pads", pads),
             IRAttribute(name: "group", value: .int(Int64(group)))]
        }

        /// Σ (x - xz)(w - wz[oc]) over the window; padding is x's zero point.
        func reference(x: [Int], xz: Int, weights: [Int], wz: [Int]) -> [Int] {
            let inG = inC / group, outG = outC / group
            var y = [Int](repeating: 0, count: batch * outC * oh * ow)
            for n in 0..<batch { for oc in 0..<outC { for oy in 0..<oh { for ox in 0..<ow {
                var s = 0
                for icg in 0..<inG { for u in 0..<kh { for v in 0..<kw {
                    let iy: Int = oy * stride[0] - pads[0] + u * dilation[0]
                    let ix: Int = ox * stride[1] - pads[1] + v * dilation[1]
                    let ic: Int = (oc / outG) * inG + icg
                    let inside: Bool = iy >= 0 && iy < h && ix >= 0 && ix < w
                    let xv: Int = inside ? x[((n * inC + ic) * h + iy) * w + ix] : xz
                    let wv: Int = weights[((oc * inG + icg) * kh + u) * kw + v]
                    let zero: Int = wz[wz.count == 1 ? 0 : oc]
                    s += (xv - xz) * (wv - zero)
                } } }
                y[((n * outC + oc) * oh + oy) * ow + ox] = s
            } } } }
            return y
        }
    }

    static func convCases() -> [ConvCase] {
        var rng = SeededGenerator(seed: 19)
        var cases: [ConvCase] = [ConvCase()]
        for _ in 0..<24 {
            var c = ConvCase()
            c.group = [1, 2, 3].randomElement(using: &rng)!
            c.inC = c.group * Int.random(in: 1...3, using: &rng)
            c.outC = c.group * Int.random(in: 1...3, using: &rng)
            c.batch = Int.random(in: 1...2, using: &rng)
            c.kh = Int.random(in: 1...3, using: &rng); c.kw = Int.random(in: 1...3, using: &rng)
            c.stride = [Int.random(in: 1...2, using: &rng), Int.random(in: 1...2, using: &rng)]
            c.dilation = [Int.random(in: 1...2, using: &rng), Int.random(in: 1...2, using: &rng)]
            c.pads = (0..<4).map { _ in Int.random(in: 0...2, using: &rng) }
            c.h = (c.kh - 1) * c.dilation[0] + Int.random(in: 1...6, using: &rng)
            c.w = (c.kw - 1) * c.dilation[1] + Int.random(in: 1...6, using: &rng)
            cases.append(c)
        }
        return cases
    }

    // MARK: Tests

    func testConvIntegerMatchesDefinition() throws {
        var rng = SeededGenerator(seed: 7)
        for c in Self.convCases() {
            let x = (0..<(c.batch * c.inC * c.h * c.w)).map { _ in Int.random(in: 0...255, using: &rng) }
            let w = (0..<(c.outC * c.inC / c.group * c.kh * c.kw)).map { _ in Int.random(in: 0...255, using: &rng) }
            let xz = Int.random(in: 0...255, using: &rng), wz = (0..<c.outC).map { _ in Int.random(in: 0...255, using: &rng) }
            let y = try Self.run("ConvInteger", inputs: ["x", "w", "xz", "wz"], constants: [
                Self.constant("x", .uint8, [c.batch, c.inC, c.h, c.w], x), Self.constant("w", .uint8, [c.outC, c.inC / c.group, c.kh, c.kw], w),
                Self.constant("xz", .uint8, [], [xz]), Self.constant("wz", .uint8, [c.outC], wz),
            ], attributes: c.attributes, output: .int32)
            XCTAssertEqual(y.shape, [c.batch, c.outC, c.oh, c.ow], "\(c)")
            XCTAssertEqual(y.int64s.map(Int.init), c.reference(x: x, xz: xz, weights: w, wz: wz), "\(c) x=\(x) w=\(w) xz=\(xz) wz=\(wz)")
        }
    }

    /// Requantized: acc × (xs·ws[oc] / ys) + yz, half to even, saturated (int8 output here).
    func testQLinearConvMatchesDefinition() throws {
        var rng = SeededGenerator(seed: 8)
        for c in Self.convCases().prefix(10) {
            let x = (0..<(c.batch * c.inC * c.h * c.w)).map { _ in Int.random(in: -128...127, using: &rng) }
            let w = (0..<(c.outC * c.inC / c.group * c.kh * c.kw)).map { _ in Int.random(in: -128...127, using: &rng) }
            let bias = (0..<c.outC).map { _ in Int.random(in: -2000...2000, using: &rng) }
            let xz = Int.random(in: -10...10, using: &rng), yz = Int.random(in: -10...10, using: &rng)
            let xs: Float = 0.02, ys: Float = 0.5
            let ws = (0..<c.outC).map { _ in Float.random(in: 0.001...0.05, using: &rng) }
            let y = try Self.run("QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], constants: [
                Self.constant("x", .int8, [c.batch, c.inC, c.h, c.w], x), Self.floats("xs", [], [xs]), Self.constant("xz", .int8, [], [xz]),
                Self.constant("w", .int8, [c.outC, c.inC / c.group, c.kh, c.kw], w), Self.floats("ws", [c.outC], ws),
                Self.constant("wz", .int8, [c.outC], Array(repeating: 0, count: c.outC)), Self.floats("ys", [], [ys]),
                Self.constant("yz", .int8, [], [yz]), Self.constant("b", .int32, [c.outC], bias),
            ], attributes: c.attributes, output: .int8)
            let acc = c.reference(x: x, xz: xz, weights: w, wz: [0])
            let per = c.oh * c.ow
            let want = acc.enumerated().map { k, v -> Int in
                let oc = (k / per) % c.outC
                let r = (Double(v + bias[oc]) * Double(xs * ws[oc] / ys) + Double(yz)).rounded(.toNearestOrEven)
                return Int(min(max(r, -128), 127))
            }
            XCTAssertEqual(y.int64s.map(Int.init), want, "\(c)")
        }
    }

    /// Per-row zero points of A and per-column ones of B, by hand.
    func testMatMulIntegerZeroPointsPerRowAndColumn() throws {
        let y = try Self.run("MatMulInteger", inputs: ["a", "b", "az", "bz"], constants: [
            Self.constant("a", .uint8, [2, 2], [1, 2, 3, 4]), Self.constant("b", .uint8, [2, 2], [5, 6, 7, 8]),
            Self.constant("az", .uint8, [2], [1, 2]), Self.constant("bz", .uint8, [2], [5, 6]),
        ], output: .int32)
        // (a - az) = [[0, 1], [1, 2]], (b - bz) = [[0, 0], [2, 2]].
        XCTAssertEqual(y.int64s, [2, 2, 4, 4])
    }

    func testQLinearMatMulBatchedAndSaturating() throws {
        var rng = SeededGenerator(seed: 9)
        let (m, k, n) = (3, 5, 4)
        let a = (0..<(2 * m * k)).map { _ in Int.random(in: 0...255, using: &rng) }
        let b = (0..<(k * n)).map { _ in Int.random(in: 0...255, using: &rng) }
        let (az, bz, yz) = (113, 98, 120)
        let (as_, bs, ys): (Float, Float, Float) = (0.0066, 0.0042, 0.0038)
        let y = try Self.run("QLinearMatMul", inputs: ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], constants: [
            Self.constant("a", .uint8, [2, m, k], a), Self.floats("as", [], [as_]), Self.constant("az", .uint8, [], [az]),
            Self.constant("b", .uint8, [k, n], b), Self.floats("bs", [], [bs]), Self.constant("bz", .uint8, [], [bz]),
            Self.floats("ys", [], [ys]), Self.constant("yz", .uint8, [], [yz]),
        ], output: .uint8)
        var want: [Int] = []
        for bt in 0..<2 { for i in 0..<m { for j in 0..<n {
            let acc = (0..<k).reduce(0) { $0 + (a[(bt * m + i) * k + $1] - az) * (b[$1 * n + j] - bz) }
            want.append(Int(min(max((Double(acc) * Double(as_ * bs / ys) + Double(yz)).rounded(.toNearestOrEven), 0), 255)))
        } } }
        XCTAssertEqual(y.shape, [2, m, n])
        XCTAssertEqual(y.int64s.map(Int.init), want, "a=\(a) b=\(b)")
    }

    /// A zero point of another type than its data is refused at load; one of the wrong shape at run.
    func testZeroPointsOfWrongTypeOrShape() throws {
        XCTAssertThrowsError(try Self.run("ConvInteger", inputs: ["x", "w", "xz"], constants: [
            Self.constant("x", .uint8, [1, 1, 2, 2], [1, 2, 3, 4]), Self.constant("w", .uint8, [1, 1, 1, 1], [1]), Self.constant("xz", .int8, [], [1]),
        ], output: .int32)) { XCTAssertTrue("\($0)".contains("x_zero_point is int8 but x is uint8"), "\($0)") }
        XCTAssertThrowsError(try Self.run("ConvInteger", inputs: ["x", "w", "", "wz"], constants: [
            Self.constant("x", .uint8, [1, 1, 2, 2], [1, 2, 3, 4]), Self.constant("w", .uint8, [2, 1, 1, 1], [1, 2]), Self.constant("wz", .uint8, [3], [1, 2, 3]),
        ], output: .int32)) { XCTAssertTrue("\($0)".contains("w_zero_point has shape [3]"), "\($0)") }
        XCTAssertThrowsError(try Self.run("DequantizeLinear", inputs: ["x", "s", "z"], constants: [
            Self.constant("x", .uint8, [2], [1, 2]), Self.floats("s", [], [0.5]), Self.constant("z", .int8, [], [1]),
        ], output: .float)) { XCTAssertTrue("\($0)".contains("x_zero_point is int8 but x is uint8"), "\($0)") }
        XCTAssertThrowsError(try Self.run("DequantizeLinear", inputs: ["x", "s", "z"], constants: [
            Self.constant("x", .uint8, [2, 2], [1, 2, 3, 4]), Self.floats("s", [2], [0.5, 0.25]), Self.constant("z", .uint8, [3], [1, 2, 3]),
        ], attributes: [IRAttribute(name: "axis", value: .int(0))], output: .float)) {
            XCTAssertTrue("\($0)".contains("x_zero_point [3] must have the shape of x_scale [2]"), "\($0)")
        }
    }

    // MARK: MatMulNBits

    /// Codes `bits` wide packed from the lowest bits up, rows of `blocks × blob` bytes.
    static func packRows(_ codes: [[Int]], bits: Int, blockSize: Int) -> [Int] {
        let blob = blockSize * bits / 8
        return codes.flatMap { row -> [Int] in
            let blocks = (row.count + blockSize - 1) / blockSize
            var bytes = [Int](repeating: 0, count: blocks * blob)
            for (k, c) in row.enumerated() {
                let bit = (k / blockSize) * blob * 8 + (k % blockSize) * bits
                bytes[bit / 8] |= c << (bit % 8)
            }
            return bytes
        }
    }

    func testMatMulNBitsMatchesDefinition() throws {
        var rng = SeededGenerator(seed: 11)
        for (bits, zeros) in [(4, "packed"), (4, "float"), (4, "none"), (2, "packed"), (8, "none")] {
            let (k, n, m, blockSize) = (40, 3, 2, 16)
            let blocks = (k + blockSize - 1) / blockSize
            let codes = (0..<n).map { _ in (0..<k).map { _ in Int.random(in: 0..<(1 << bits), using: &rng) } }
            let scales = (0..<(n * blocks)).map { _ in Float.random(in: 0.01...0.1, using: &rng) }
            let zeroCodes = (0..<(n * blocks)).map { _ in Int.random(in: 0..<(1 << bits), using: &rng) }
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            var constants = [Self.constant("b", .uint8, [n, blocks, blockSize * bits / 8], Self.packRows(codes, bits: bits, blockSize: blockSize)),
                             Self.floats("s", [n * blocks], scales)]
            var inputs = ["a", "b", "s"]
            switch zeros {
            case "packed":
                let perRow = (blocks * bits + 7) / 8
                var z = [Int](repeating: 0, count: n * perRow)
                for r in 0..<n { for blk in 0..<blocks { let bit = blk * bits; z[r * perRow + bit / 8] |= zeroCodes[r * blocks + blk] << (bit % 8) } }
                constants.append(Self.constant("z", .uint8, [n * perRow], z))
                inputs.append("z")
            case "float":
                constants.append(Self.floats("z", [n * blocks], zeroCodes.map(Float.init)))
                inputs.append("z")
            default: break
            }
            let y = try Self.run("MatMulNBits", domain: "com.microsoft", inputs: inputs, constants: constants,
                                 attributes: [IRAttribute(name: "K", value: .int(Int64(k))), IRAttribute(name: "N", value: .int(Int64(n))),
                                              IRAttribute(name: "bits", value: .int(Int64(bits))), IRAttribute(name: "block_size", value: .int(Int64(blockSize)))],
                                 output: .float, a: MBTensor(shape: [m, k], floats: a))
            XCTAssertEqual(y.shape, [m, n])
            for i in 0..<m { for j in 0..<n {
                var want = 0.0
                for kk in 0..<k {
                    let blk = kk / blockSize
                    let zero = zeros == "none" ? Double(1 << (bits - 1)) : Double(zeroCodes[j * blocks + blk])
                    want += Double(a[i * k + kk]) * ((Double(codes[j][kk]) - zero) * Double(scales[j * blocks + blk]))
                }
                // Float32 products summed by BLAS: relative error well under 1e-5 for K = 40.
                XCTAssertEqual(Double(y.floats[i * n + j]), want, accuracy: 1e-5 * max(1, abs(want)), "bits \(bits) zeros \(zeros) at [\(i), \(j)]")
            } }
        }
    }

    /// A MatMulNBits weight whose byte count does not fit K, N, bits and block_size is refused at
    /// load, naming the sizes; zero points of the wrong count too.
    func testMatMulNBitsOfWrongSizesIsRefused() throws {
        let attributes = [IRAttribute(name: "K", value: .int(32)), IRAttribute(name: "N", value: .int(2)),
                          IRAttribute(name: "bits", value: .int(4)), IRAttribute(name: "block_size", value: .int(16))]
        let a = MBTensor(shape: [1, 32], floats: Array(repeating: 1, count: 32))
        // [N=2, blocks=2, blob=8] needs 32 bytes; 31 given.
        XCTAssertThrowsError(try Self.run("MatMulNBits", domain: "com.microsoft", inputs: ["a", "b", "s"], constants: [
            Self.constant("b", .uint8, [31], Array(repeating: 0x88, count: 31)), Self.floats("s", [4], [1, 1, 1, 1]),
        ], attributes: attributes, output: .float, a: a)) { XCTAssertTrue("\($0)".contains("needs 32 uint8 values"), "\($0)") }
        XCTAssertThrowsError(try Self.run("MatMulNBits", domain: "com.microsoft", inputs: ["a", "b", "s", "z"], constants: [
            Self.constant("b", .uint8, [2, 2, 8], Array(repeating: 0x88, count: 32)), Self.floats("s", [4], [1, 1, 1, 1]),
            Self.constant("z", .uint8, [3], [0, 0, 0]),
        ], attributes: attributes, output: .float, a: a)) { XCTAssertTrue("\($0)".contains("zero_points has 3 values"), "\($0)") }
    }
}
