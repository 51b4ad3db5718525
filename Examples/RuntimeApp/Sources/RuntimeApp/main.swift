// Loads a converted model (.mbm) with MBRuntime alone, runs it on an input (.npy) with two
// threads and prints each output's class probabilities.
//
//     RuntimeApp [model.mbm] [input.npy]
//
// Defaults: the bundled tiny_cnn converted at 1.4 bits and its seeded reference input. No
// Foundation: the runtime does not need it, and leaving it out keeps the app smaller in memory.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MBCore
import MBRuntime

/// Examples/models, from this file's path (…/Examples/RuntimeApp/Sources/RuntimeApp/main.swift).
let examples = String(#filePath).split(separator: "/", omittingEmptySubsequences: false).dropLast(4).joined(separator: "/") + "/models"
let arguments = CommandLine.arguments.dropFirst()
let modelPath = arguments.first ?? examples + "/tiny_cnn.mbm"
let inputPath = arguments.dropFirst().first ?? examples + "/tiny_cnn.input.npy"

/// `x` with 4 decimals (what printf's %.4f prints, without Foundation's String(format:)).
func fixed4(_ x: Float) -> String {
    let scaled = (Double(x).magnitude * 10_000).rounded()
    let whole = Int(scaled / 10_000), fraction = Int(scaled.truncatingRemainder(dividingBy: 10_000))
    let digits = String(fraction)
    return (x < 0 && scaled > 0 ? "-" : "") + "\(whole)." + String(repeating: "0", count: 4 - digits.count) + digits
}

do {
    let model = try MBModel(contentsOfFile: modelPath)
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
            print("  row \(row): " + p.map(fixed4).joined(separator: " ") + "  → class \(best)")
        }
    }
} catch {
    let message = Array("RuntimeApp: \(error)\n".utf8)
    _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }  // standard error
    exit(1)
}
