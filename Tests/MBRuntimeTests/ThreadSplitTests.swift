import MBCore
import MBRuntime
import XCTest

/// Elementwise ops (unary, binary with a per-channel and a same-shape operand, fused chains)
/// and depthwise convolutions after a convolution, on one image and on two, with planes large
/// enough to split by positions and too small for it: however the work is cut across threads,
/// every result is computed per element, so two and three threads give exactly the one-thread
/// output.
final class ThreadSplitTests: XCTestCase {
    /// Conv, per-channel Add, Sigmoid, Mul by the Conv output, a residual Add of the input, a
    /// scalar chain, then depthwise convolutions at strides 1 (with Relu) and 2 over an input of
    /// `shape` (channels `shape[1]`).
    static func model(_ shape: [Int]) -> IRModel {
        let c = shape[1]
        let nodes = [
            IRNode(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [IRAttribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
            IRNode(name: "bias", opType: "Add", inputs: ["c", "v"], outputs: ["a"]),
            IRNode(name: "sig", opType: "Sigmoid", inputs: ["a"], outputs: ["s"]),
            IRNode(name: "gate", opType: "Mul", inputs: ["s", "c"], outputs: ["m"]),
            IRNode(name: "res", opType: "Add", inputs: ["m", "x"], outputs: ["r"]),
            IRNode(name: "half", opType: "Mul", inputs: ["r", "h"], outputs: ["q"]),
            IRNode(name: "tanh", opType: "Tanh", inputs: ["q"], outputs: ["t"]),
            IRNode(name: "dw", opType: "Conv", inputs: ["t", "d", "db"], outputs: ["e"],
                   attributes: [IRAttribute(name: "pads", value: .ints([1, 1, 1, 1])), IRAttribute(name: "group", value: .int(Int64(c)))]),
            IRNode(name: "relu", opType: "Relu", inputs: ["e"], outputs: ["u"]),
            IRNode(name: "dw2", opType: "Conv", inputs: ["u", "d"], outputs: ["y"],
                   attributes: [IRAttribute(name: "pads", value: .ints([1, 1, 1, 1])), IRAttribute(name: "group", value: .int(Int64(c))),
                                IRAttribute(name: "strides", value: .ints([2, 2]))]),
        ]
        let consts = [OptimizerTests.random("w", [c, c, 3, 3], seed: 1, scale: 0.2), OptimizerTests.random("v", [1, c, 1, 1], seed: 2),
                      OptimizerTests.random("d", [c, 1, 3, 3], seed: 3, scale: 0.5), OptimizerTests.random("db", [c], seed: 4),
                      OptimizerTests.constant("h", [], [0.5])]
        return OptimizerTests.model(nodes, consts, input: shape)
    }

    func testTwoAndThreeThreadsEqualOne() throws {
        // 48x48 and 40x40 planes (one image, two images) and 9x9 planes with many channels.
        for shape in [[1, 24, 48, 48], [2, 16, 40, 40], [1, 512, 9, 9]] {
            var rng = SeededGenerator(seed: 11)
            let x = MBTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextUnitDouble() * 4 - 2) })
            for optimize in [true, false] {
                let m = try MBModel(ir: Self.model(shape), options: .init(optimize: optimize))
                let one = try XCTUnwrap(m.makeSession(.init(threads: 1)).run(["x": x])["y"]).floats
                for threads in [2, 3] {
                    let got = try XCTUnwrap(m.makeSession(.init(threads: threads)).run(["x": x])["y"]).floats
                    let first = zip(got, one).enumerated().first { $0.element.0 != $0.element.1 }
                    XCTAssertNil(first, "shape \(shape) optimize \(optimize) threads \(threads): element \(first?.offset ?? 0) is \(first?.element.0 ?? 0), one thread \(first?.element.1 ?? 0)")
                }
            }
        }
    }
}
