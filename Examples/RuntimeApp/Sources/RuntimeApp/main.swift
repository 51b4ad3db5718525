// Loads a converted model (.mbm) with MBRuntime alone, runs it on an input (.npy) with two
// threads and prints each output's class probabilities.
//
//     swift run RuntimeApp [model.mbm] [input.npy]
//
// Defaults: the bundled tiny_cnn converted at 1.4 bits and its seeded reference input.
import Foundation
import MBCore
import MBRuntime

let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let examples = here.appendingPathComponent("../../../models").standardizedFileURL
let arguments = CommandLine.arguments.dropFirst()
let modelURL = arguments.first.map { URL(fileURLWithPath: $0) } ?? examples.appendingPathComponent("tiny_cnn.mbm")
let inputPath = arguments.dropFirst().first ?? examples.appendingPathComponent("tiny_cnn.input.npy").path

do {
    let model = try MBModel(contentsOf: modelURL)
    for i in model.inputs { print("input  \(i.name): \(i.elementType?.name ?? "?") \(i.shape?.map(\.description) ?? [])") }
    for o in model.outputs { print("output \(o.name): \(o.elementType?.name ?? "?") \(o.shape?.map(\.description) ?? [])") }
    guard let input = model.inputs.first else { fatalError("the model has no inputs") }
    let session = model.makeSession(.init(threads: 2))
    let outputs = try session.run([input.name: MBTensor(npy: NPY.read(path: inputPath))])
    for o in model.outputs {
        guard let t = outputs[o.name] else { continue }
        let values = t.floats
        let columns = t.shape.last ?? values.count
        print("\(o.name) \(t.shape):")
        for row in 0..<(values.count / max(columns, 1)) {
            let p = Array(values[(row * columns)..<((row + 1) * columns)])
            let best = p.indices.max { p[$0] < p[$1] }!
            print("  row \(row): " + p.map { String(format: "%.4f", $0) }.joined(separator: " ") + "  → class \(best)")
        }
    }
} catch {
    FileHandle.standardError.write(Data("RuntimeApp: \(error)\n".utf8))
    exit(1)
}
