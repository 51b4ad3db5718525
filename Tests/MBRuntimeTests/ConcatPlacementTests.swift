import MBCore
import MBRuntime
import XCTest

/// Concat inputs written in place by their producers (from a session's second run of a shape
/// on): every run gives exactly what a fresh session (which copies) gives, when the input shape
/// changes between runs, when the batch puts the inputs out of line (copied), when a placed
/// value is read by another node after the Concat, and when one Concat feeds another.
final class ConcatPlacementTests: XCTestCase {
    /// A fire module: squeeze 1×1 + Relu, expand 1×1 (`a`, also read by a Sigmoid after the
    /// Concat) and 3×3 (`b`), concatenated with the graph input `x` (always copied); a second
    /// Concat of that result with a 1×1 convolution of it; a 1×1 convolution reads both.
    static func model() -> IRModel {
        let pad = IRAttribute(name: "pads", value: .ints([1, 1, 1, 1]))
        let axis = IRAttribute(name: "axis", value: .int(1))
        let nodes = [
            IRNode(name: "squeeze", opType: "Conv", inputs: ["x", "ws"], outputs: ["s0"]),
            IRNode(name: "relu", opType: "Relu", inputs: ["s0"], outputs: ["s"]),
            IRNode(name: "e1", opType: "Conv", inputs: ["s", "w1", "b1"], outputs: ["a"]),
            IRNode(name: "e3", opType: "Conv", inputs: ["s", "w3"], outputs: ["b"], attributes: [pad]),
            IRNode(name: "cat", opType: "Concat", inputs: ["a", "b", "x"], outputs: ["c"], attributes: [axis]),
            IRNode(name: "late", opType: "Sigmoid", inputs: ["a"], outputs: ["z"]),
            IRNode(name: "p", opType: "Conv", inputs: ["c", "wp"], outputs: ["d"]),
            IRNode(name: "cat2", opType: "Concat", inputs: ["c", "d"], outputs: ["e"], attributes: [axis]),
            IRNode(name: "head", opType: "Conv", inputs: ["e", "wh"], outputs: ["y"]),
        ]
        let consts = [OptimizerTests.random("ws", [3, 4, 1, 1], seed: 1), OptimizerTests.random("w1", [5, 3, 1, 1], seed: 2),
                      OptimizerTests.random("b1", [5], seed: 3), OptimizerTests.random("w3", [6, 3, 3, 3], seed: 4, scale: 0.3),
                      OptimizerTests.random("wp", [2, 15, 1, 1], seed: 5), OptimizerTests.random("wh", [3, 17, 1, 1], seed: 6)]
        var ir = OptimizerTests.model(nodes, consts, outputs: ["y", "z"])
        ir.graph.inputs = [IRValueInfo(name: "x", elementType: .float, shape: [.symbolic("n"), .fixed(4), .symbolic("h"), .symbolic("w")])]
        return ir
    }

    static func input(_ shape: [Int], seed: UInt64) -> MBTensor {
        var rng = SeededGenerator(seed: seed)
        return MBTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextUnitDouble() * 4 - 2) })
    }

    func testPlacedRunsEqualCopyingRuns() throws {
        let m = try MBModel(ir: Self.model())
        for threads in [1, 2] {
            let session = m.makeSession(.init(threads: threads))
            // Same shape three times, then other sizes, a batch of two (inputs out of line), back.
            let shapes = [[1, 4, 9, 11], [1, 4, 9, 11], [1, 4, 9, 11], [1, 4, 7, 7], [1, 4, 7, 7], [2, 4, 7, 7], [1, 4, 9, 11], [1, 4, 9, 11]]
            var placed: [Int] = []
            for (run, shape) in shapes.enumerated() {
                let x = Self.input(shape, seed: UInt64(run))
                let got = try session.run(["x": x])
                let fresh = try m.makeSession(.init(threads: threads)).run(["x": x])
                let want = try MBModel(ir: Self.model(), options: .init(optimize: false)).makeSession(.init(kernels: .reference)).run(["x": x])
                for name in ["y", "z"] {
                    let a = try XCTUnwrap(got[name]).floats, b = try XCTUnwrap(fresh[name]).floats
                    let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }
                    XCTAssertNil(first, "threads \(threads) run \(run) shape \(shape) \(name): element \(first?.offset ?? 0) is \(first?.element.0 ?? 0), a fresh session gives \(first?.element.1 ?? 0)")
                    let r = try XCTUnwrap(want[name]).floats
                    let scale = max(r.map(abs).max() ?? 0, 0.01)
                    let worst = zip(a, r).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst / scale, 1e-5, "threads \(threads) run \(run) shape \(shape) \(name) against the reference")
                }
                placed.append(session.lastRunConcatInputsInPlace)
            }
            // a, b into cat, d into cat2 (cat itself is placed neither: it places its own
            // inputs): 3 in place once the shape has been seen, none in a first run or a batch of two.
            XCTAssertEqual(placed, [0, 3, 3, 0, 3, 0, 0, 3], "threads \(threads)")
        }
    }

    /// Split and Slice of one image are views of their input: each part equals the slice of the
    /// input computed here, also after an elementwise op that may write in place read the parts
    /// (a view is never written over), and for a batch of two (copied). The Identity that makes
    /// the second Split output a graph output is removed by renaming that output (not the first).
    func testSplitAndSliceViews() throws {
        let axis = IRAttribute(name: "axis", value: .int(1))
        let nodes = [
            IRNode(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
            IRNode(name: "split", opType: "Split", inputs: ["c", "sizes"], outputs: ["s1", "s2"], attributes: [axis]),
            IRNode(name: "slice", opType: "Slice", inputs: ["c", "starts", "ends", "axes"], outputs: ["t"]),
            IRNode(name: "neg", opType: "Neg", inputs: ["s1"], outputs: ["n1"]),
            IRNode(name: "sum", opType: "Add", inputs: ["n1", "t"], outputs: ["y"]),
            IRNode(name: "copy", opType: "Identity", inputs: ["s2"], outputs: ["z"]),
        ]
        let consts = [OptimizerTests.random("w", [6, 4, 1, 1], seed: 9),
                      RuntimeLimitTests.int64Constant("sizes", [2, 4]),
                      RuntimeLimitTests.int64Constant("starts", [3]),
                      RuntimeLimitTests.int64Constant("ends", [5]),
                      RuntimeLimitTests.int64Constant("axes", [1])]
        var ir = OptimizerTests.model(nodes, consts, outputs: ["c", "y", "z"])
        ir.graph.inputs = [IRValueInfo(name: "x", elementType: .float, shape: [.symbolic("n"), .fixed(4), .fixed(5), .fixed(3)])]
        let m = try MBModel(ir: ir)
        for batch in [1, 2] {
            let x = Self.input([batch, 4, 5, 3], seed: 20)
            let out = try m.makeSession(.init(threads: 2)).run(["x": x])
            let c = try XCTUnwrap(out["c"]).floats
            let plane = 15
            func channels(_ r: Range<Int>) -> [Float] {
                var part: [Float] = []
                for n in 0..<batch {
                    for ch in r {
                        let start: Int = (n * 6 + ch) * plane
                        part += c[start..<start + plane]
                    }
                }
                return part
            }
            let s1 = channels(0..<2), t = channels(3..<5)
            XCTAssertEqual(try XCTUnwrap(out["y"]).floats, zip(s1, t).map { -$0 + $1 }, "batch \(batch): -s1 + t")
            XCTAssertEqual(try XCTUnwrap(out["z"]).floats, channels(2..<6), "batch \(batch): s2")
            XCTAssertEqual(try XCTUnwrap(out["z"]).shape, [batch, 4, 5, 3])
        }
    }

    /// A C2f block: a 1×1 convolution split in two, the second half through two convolutions
    /// (the second with a residual Add), the halves and both results concatenated. From the
    /// second run on the convolution writes into the Concat's buffer and the two Split parts
    /// are views there, so nothing but the results is copied... nor are they: all four inputs
    /// are in place. A Split whose parts the Concat takes out of order is not placed (copied).
    func testSplitPartsConcatenatedInOrderArePlacedThroughTheirInput() throws {
        let axis = IRAttribute(name: "axis", value: .int(1))
        let pad = IRAttribute(name: "pads", value: .ints([1, 1, 1, 1]))
        func model(order: [String]) -> IRModel {
            let nodes = [
                IRNode(name: "cv1", opType: "Conv", inputs: ["x", "w1"], outputs: ["c"]),
                IRNode(name: "split", opType: "Split", inputs: ["c", "sizes"], outputs: ["a", "b"], attributes: [axis]),
                IRNode(name: "m1", opType: "Conv", inputs: ["b", "w2"], outputs: ["m1"], attributes: [pad]),
                IRNode(name: "m2", opType: "Conv", inputs: ["m1", "w3"], outputs: ["m2c"], attributes: [pad]),
                IRNode(name: "res", opType: "Add", inputs: ["m2c", "b"], outputs: ["m2"]),
                IRNode(name: "cat", opType: "Concat", inputs: order, outputs: ["cat"], attributes: [axis]),
                IRNode(name: "cv2", opType: "Conv", inputs: ["cat", "w4"], outputs: ["y"]),
            ]
            let consts = [OptimizerTests.random("w1", [8, 4, 1, 1], seed: 31), RuntimeLimitTests.int64Constant("sizes", [4, 4]),
                          OptimizerTests.random("w2", [4, 4, 3, 3], seed: 32, scale: 0.3), OptimizerTests.random("w3", [4, 4, 3, 3], seed: 33, scale: 0.3),
                          OptimizerTests.random("w4", [3, 16, 1, 1], seed: 34)]
            return OptimizerTests.model(nodes, consts, input: [1, 4, 9, 7], outputs: ["y"])
        }
        for (order, expected) in [(["a", "b", "m1", "m2"], 4), (["b", "a", "m1", "m2"], 2)] {
            let ir = model(order: order)
            let m = try MBModel(ir: ir)
            for threads in [1, 2] {
                let session = m.makeSession(.init(threads: threads))
                let x = Self.input([1, 4, 9, 7], seed: 40)
                let want = try MBModel(ir: ir, options: .init(optimize: false)).makeSession(.init(kernels: .reference)).run(["x": x])
                var placed: [Int] = []
                for run in 0..<3 {
                    let got = try XCTUnwrap(session.run(["x": x])["y"]).floats
                    let r = try XCTUnwrap(want["y"]).floats
                    let scale = max(r.map(abs).max() ?? 0, 0.01)
                    let worst = zip(got, r).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst / scale, 1e-5, "order \(order) threads \(threads) run \(run)")
                    placed.append(session.lastRunConcatInputsInPlace)
                }
                XCTAssertEqual(placed, [0, expected, expected], "order \(order) threads \(threads)")
            }
        }
    }
}
