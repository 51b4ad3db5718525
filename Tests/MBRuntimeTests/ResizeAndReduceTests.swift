import MBCore
import MBRuntime
import XCTest

/// The one-pass paths for nearest Resize, the float reductions over a contiguous run of axes
/// and global-window pooling, each against the reference kernels (the separable Resize, the
/// Double-accumulated reduction walk, the pooling definition) on seeded inputs with odd sizes.
final class ResizeAndReduceTests: XCTestCase {
    static func input(_ shape: [Int], seed: UInt64) -> MBTensor {
        var rng = SeededGenerator(seed: seed)
        return MBTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextUnitDouble() * 4 - 2) })
    }

    /// Runs `node` (input x, output y) with fast kernels at one and two threads and with the
    /// reference kernels; nearest copies and max/min must agree exactly, sums within `tolerance`
    /// of the output's scale.
    func check(_ node: IRNode, _ constants: [IRTensor], input shape: [Int], opset: Int64 = 13, exact: Bool, tolerance: Float = 1e-6,
               _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ir = OptimizerTests.model([node], constants, input: shape, opset: opset)
        let x = Self.input(shape, seed: UInt64(shape.reduce(1, *)))
        let want = try XCTUnwrap(try MBModel(ir: ir).makeSession(.init(kernels: .reference)).run(["x": x])["y"], file: file, line: line)
        for threads in [1, 2] {
            let got = try XCTUnwrap(try MBModel(ir: ir).makeSession(.init(threads: threads)).run(["x": x])["y"], file: file, line: line)
            XCTAssertEqual(got.shape, want.shape, "\(what) threads \(threads)", file: file, line: line)
            let a = got.floats, b = want.floats
            if exact {
                let first = zip(a, b).enumerated().first { !($0.element.0 == $0.element.1 || ($0.element.0.isNaN && $0.element.1.isNaN)) }
                XCTAssertNil(first, "\(what) threads \(threads): element \(first?.offset ?? 0) is \(first?.element.0 ?? 0), reference \(first?.element.1 ?? 0)",
                             file: file, line: line)
            } else {
                let scale = max(b.map(abs).max() ?? 0, 0.01)
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(what) threads \(threads)", file: file, line: line)
            }
        }
    }

    func testNearestResizeMatchesTheSeparablePath() throws {
        let cases: [([Int], [Float], String, String)] = [
            ([1, 3, 5, 7], [1, 1, 2, 2], "asymmetric", "floor"),
            ([2, 3, 5, 7], [1, 1, 2, 3], "half_pixel", "round_prefer_floor"),
            ([1, 4, 9, 6], [1, 1, 0.5, 0.75], "half_pixel", "round_prefer_ceil"),
            ([1, 2, 6, 5], [1, 1, 1.7, 0.6], "align_corners", "ceil"),
            ([1, 2, 4, 4], [1, 2, 2, 1], "pytorch_half_pixel", "round_prefer_floor"),  // the channel axis too
            ([3, 11], [2, 1.5], "tf_half_pixel_for_nearest", "floor"),
            ([2, 3, 4, 5, 3], [1, 1, 2, 1, 2], "asymmetric", "floor"),
        ]
        for (k, (shape, scales, coordinates, mode)) in cases.enumerated() {
            let node = IRNode(name: "up", opType: "Resize", inputs: ["x", "", "scales"], outputs: ["y"], attributes: [
                IRAttribute(name: "mode", value: .string(Array("nearest".utf8))),
                IRAttribute(name: "coordinate_transformation_mode", value: .string(Array(coordinates.utf8))),
                IRAttribute(name: "nearest_mode", value: .string(Array(mode.utf8))),
            ])
            try check(node, [RuntimeLimitTests.floatConstant("scales", scales)], input: shape, exact: true,
                      "case \(k): \(shape) scales \(scales) \(coordinates) \(mode)")
        }
        // Sizes instead of scales, and Upsample (opset 9).
        let sized = IRNode(name: "up", opType: "Resize", inputs: ["x", "", "", "sizes"], outputs: ["y"],
                           attributes: [IRAttribute(name: "mode", value: .string(Array("nearest".utf8)))])
        try check(sized, [RuntimeLimitTests.int64Constant("sizes", [1, 3, 13, 4])], input: [1, 3, 5, 9], exact: true, "sizes")
        let upsample = IRNode(name: "up", opType: "Upsample", inputs: ["x", "scales"], outputs: ["y"],
                              attributes: [IRAttribute(name: "mode", value: .string(Array("nearest".utf8)))])
        try check(upsample, [RuntimeLimitTests.floatConstant("scales", [1, 1, 2, 2])], input: [1, 5, 3, 4], opset: 9, exact: true, "upsample")
    }

    func testReductionsOverContiguousAxesMatchTheWalk() throws {
        let cases: [([Int], [Int64])] = [([1, 5, 7, 9], [2, 3]), ([2, 6, 4, 3], [1]), ([2, 6, 4, 3], [1, 2]), ([3, 17], [-1]),
                                         ([1, 40, 40, 3], [1, 2]), ([4, 5, 6], [0]), ([2, 3, 4], [0, 1, 2])]
        for (shape, axes) in cases {
            for (op, exact) in [("ReduceMean", false), ("ReduceSum", false), ("ReduceMax", true), ("ReduceMin", true)] {
                for keep in [0, 1] {
                    let node = IRNode(name: "r", opType: op, inputs: ["x"], outputs: ["y"], attributes: [
                        IRAttribute(name: "axes", value: .ints(axes)), IRAttribute(name: "keepdims", value: .int(Int64(keep))),
                    ])
                    try check(node, [], input: shape, exact: exact, tolerance: 2e-6, "\(op) \(shape) axes \(axes) keepdims \(keep)")
                }
            }
        }
    }

    func testGlobalWindowPoolingMatchesTheDefinition() throws {
        let pool = IRNode(name: "p", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
                          attributes: [IRAttribute(name: "kernel_shape", value: .ints([7, 5]))])
        try check(pool, [], input: [2, 19, 7, 5], exact: false, "AveragePool over the whole plane")
        for op in ["GlobalAveragePool", "GlobalMaxPool"] {
            try check(IRNode(name: "p", opType: op, inputs: ["x"], outputs: ["y"]), [], input: [1, 33, 9, 13], exact: op == "GlobalMaxPool", op)
        }
    }
}
