// Builds a small CNN in code (Conv → Relu → GlobalAveragePool → Flatten → Gemm → Softmax),
// runs it with MBRuntime and prints the class probabilities. When .mbm loading lands, the
// graph comes from `MBModel(contentsOf:)` instead; the session code stays the same.
import MBCore
import MBRuntime

func constant(_ name: String, _ shape: [Int], seed: UInt64, scale: Double) -> IRTensor {
    var rng = SeededGenerator(seed: seed)
    let values = (0..<shape.reduce(1, *)).map { _ in Float(rng.nextNormal() * scale) }
    let bytes = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    return IRTensor(name: name, elementType: .float, shape: shape, storage: .dense(ByteSlice(copying: bytes)))
}

let graph = IRGraph(
    name: "tiny",
    inputs: [IRValueInfo(name: "image", elementType: .float, shape: [.symbolic("N"), .fixed(3), .fixed(16), .fixed(16)])],
    outputs: [IRValueInfo(name: "probs", elementType: .float, shape: [.symbolic("N"), .fixed(5)])],
    nodes: [
        IRNode(name: "conv", opType: "Conv", inputs: ["image", "w", "b"], outputs: ["c"],
               attributes: [IRAttribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
        IRNode(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
        IRNode(name: "pool", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["p"]),
        IRNode(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
        IRNode(name: "fc", opType: "Gemm", inputs: ["f", "fc_w", "fc_b"], outputs: ["logits"],
               attributes: [IRAttribute(name: "transB", value: .int(1))]),
        IRNode(name: "softmax", opType: "Softmax", inputs: ["logits"], outputs: ["probs"]),
    ],
    constants: [
        constant("w", [8, 3, 3, 3], seed: 1, scale: 0.5), constant("b", [8], seed: 2, scale: 0.1),
        constant("fc_w", [5, 8], seed: 3, scale: 0.5), constant("fc_b", [5], seed: 4, scale: 0.1),
    ]
)

do {
    let model = try MBModel(ir: IRModel(graph: graph, opsets: [IROpset(domain: "", version: 13)]))
    for i in model.inputs { print("input  \(i.name): \(i.elementType?.name ?? "?") \(i.shape ?? [])") }
    for o in model.outputs { print("output \(o.name): \(o.elementType?.name ?? "?") \(o.shape ?? [])") }
    let session = model.makeSession(.init(threads: 2))
    var rng = SeededGenerator(seed: 7)
    let pixels = (0..<(2 * 3 * 16 * 16)).map { _ in Float(rng.nextUnitDouble()) }
    let outputs = try session.run(["image": MBTensor(shape: [2, 3, 16, 16], floats: pixels)])
    let probs = outputs["probs"]!
    print("probs \(probs.shape):")
    let values = probs.floats
    for row in 0..<probs.shape[0] {
        let p = values[(row * 5)..<(row * 5 + 5)]
        let best = p.indices.max { p[$0] < p[$1] }! - row * 5
        print("  image \(row): " + p.map { String(Float(Int($0 * 10000)) / 10000) }.joined(separator: " ") + "  → class \(best)")
    }
} catch {
    print("RuntimeApp: \(error)")
    fatalError("RuntimeApp failed")
}
