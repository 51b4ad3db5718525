import Foundation
import MBCore
import MBRuntime

/// A model's inputs from `.npy` files, as every command that runs a model takes them
/// (`run`, `bench`, `verify`, `--calibrate`): `NAME=file.npy`, or a bare path for a one-input
/// model; output and input files are named after their tensors.
public enum ModelInputs {
    /// `NAME=path` pairs (a bare path when the model has one input), every input given once.
    public static func read(_ specs: [String], model: MBModel) throws -> [String: MBTensor] {
        var feeds: [String: MBTensor] = [:]
        let names = model.inputs.map(\.name).joined(separator: ", ")
        for spec in specs {
            let name: String, path: String
            if let eq = spec.firstIndex(of: "="), !model.inputs.contains(where: { $0.name == spec }) {
                name = String(spec[..<eq])
                path = String(spec[spec.index(after: eq)...])
            } else if model.inputs.count == 1 {
                name = model.inputs[0].name
                path = spec
            } else {
                throw ConversionError("--input \(spec): expected NAME=file.npy (inputs: \(names))")
            }
            guard model.inputs.contains(where: { $0.name == name }) else {
                throw ConversionError("--input \(spec): the model has no input '\(name)' (inputs: \(names))")
            }
            let declared = model.inputs.first { $0.name == name }?.elementType
            do { feeds[name] = try MBTensor(npy: NPY.read(path: path), declared: declared) } catch { throw ConversionError(error) }
        }
        let missing = model.inputs.filter { feeds[$0.name] == nil }
        if !missing.isEmpty {
            throw ConversionError("no value for input \(missing.map { "'\($0.name)' (\($0.elementType?.name ?? "?") \($0.shape.map { "\($0)" } ?? "?"))" }.joined(separator: ", ")); pass --input NAME=file.npy")
        }
        return feeds
    }

    /// A file name for a tensor: characters outside [A-Za-z0-9._-] become '_'.
    public static func fileName(for tensor: String) -> String {
        let safe = tensor.unicodeScalars.map { c -> String in
            CharacterSet.alphanumerics.contains(c) && c.isASCII || c == "." || c == "-" || c == "_" ? String(c) : "_"
        }.joined()
        return (safe.isEmpty ? "output" : safe) + ".npy"
    }
}
