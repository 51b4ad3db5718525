import Foundation
import MBCore
import MBImage
import MBRuntime

/// Calibration (or evaluation) inputs on disk, read a batch of entries at a time: only the
/// headers are read when the source is opened, and `batch` reads just the rows it returns, so
/// streamed calibration holds one batch of inputs however many there are.
///
/// `path` is a `.npy` file (one-input models), a folder holding `<input name>.npy` or
/// `input_N.npy` per model input, or, for a one-input model, a folder of any number of `.npy`
/// files whose entries (axis 0), file by file in name order, are the samples, or a folder of
/// PNG/JPEG images, one entry each in name order, decoded and preprocessed by `images`.
public struct CalibrationInputs: Sendable {
    /// One file: its path and what its header says (nil for an image: one entry).
    struct Part: Sendable {
        var path: String
        var layout: NPY.Layout?
        var rows: Int { layout.map { $0.shape.first ?? 1 } ?? 1 }
    }

    public let path: String
    /// Per model input, in the model's order: its name and the files holding its entries.
    let inputs: [(name: String, parts: [Part])]
    /// How image files become entries.
    let images: ImagePreprocessing

    /// Entries along axis 0 (the smallest over the inputs when they differ; see `isBatchable`).
    public var count: Int { inputs.map { $0.parts.reduce(0) { $0 + $1.rows } }.min() ?? 0 }

    /// Whether every input has the same number of entries along axis 0, so the set can be
    /// split into batches (a rank-0 input or one with a different count cannot be).
    public var isBatchable: Bool {
        let counts = inputs.map { $0.parts.reduce(0) { $0 + $1.rows } }
        return inputs.allSatisfy { $0.parts.allSatisfy { $0.layout.map { !$0.shape.isEmpty } ?? true } } && Set(counts).count == 1
    }

    /// Finds the files for `model`'s inputs and reads their headers (images are decoded only
    /// when their entries are read).
    public static func open(_ path: String, model: MBModel, images: ImagePreprocessing = ImagePreprocessing()) throws -> CalibrationInputs {
        try open(path, inputs: model.inputs, images: images)
    }

    /// `open` for a model with these `inputs` (a graph's, without building the model).
    static func open(_ path: String, inputs modelInputs: [IRValueInfo], images: ImagePreprocessing = ImagePreprocessing()) throws -> CalibrationInputs {
        if let problem = images.problem { throw ConversionError("image preprocessing: \(problem)") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ConversionError("\(path): no such file or folder (calibration inputs)")
        }
        if !isDir.boolValue {
            guard modelInputs.count == 1 else { throw ConversionError("\(path): a single file calibrates one-input models only; give a folder with <input>.npy per input") }
            return CalibrationInputs(path: path, inputs: [(modelInputs[0].name, [try part(path)])], images: images)
        }
        var found: [(name: String, parts: [Part])] = []
        for (i, input) in modelInputs.enumerated() {
            for name in [ModelInputs.fileName(for: input.name), "input_\(i).npy"] {
                let p = (path as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: p) { found.append((input.name, [try part(p)])); break }
            }
        }
        if found.count == modelInputs.count { return CalibrationInputs(path: path, inputs: found, images: images) }
        guard modelInputs.count == 1 else {
            throw ConversionError("\(path): expected \(modelInputs.map { ModelInputs.fileName(for: $0.name) }.joined(separator: ", "))")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        let files = names.filter { $0.hasSuffix(".npy") }, pictures = names.filter(Image.isImage)
        if !pictures.isEmpty {
            guard files.isEmpty else {
                throw ConversionError("\(path): holds both .npy files and images (\(files[0]), \(pictures[0])); give a folder of one kind")
            }
            let parts = pictures.map { Part(path: (path as NSString).appendingPathComponent($0), layout: nil) }
            return CalibrationInputs(path: path, inputs: [(modelInputs[0].name, parts)], images: images)
        }
        guard !files.isEmpty else { throw ConversionError("\(path): no .npy files and no PNG/JPEG images") }
        let parts = try files.map { try part((path as NSString).appendingPathComponent($0)) }
        let layouts = parts.map { $0.layout! }
        let tail = Array(layouts[0].shape.dropFirst())
        guard layouts.allSatisfy({ !$0.shape.isEmpty && Array($0.shape.dropFirst()) == tail && $0.elementType == .float }) else {
            throw ConversionError("\(path): the .npy files differ in shape beyond the batch axis (or are not float32); their entries are one set of samples")
        }
        return CalibrationInputs(path: path, inputs: [(modelInputs[0].name, parts)], images: images)
    }

    static func part(_ path: String) throws -> Part {
        do { return Part(path: path, layout: try NPY.layout(path: path)) } catch { throw ConversionError(error) }
    }

    /// Every entry, one tensor per input (each file read whole, as one batch).
    public func all() throws -> [String: MBTensor] {
        var feeds: [String: MBTensor] = [:]
        for (name, parts) in inputs {
            if parts.first?.layout == nil {
                feeds[name] = try pictures(parts)
                continue
            }
            do {
                if parts.count == 1 { feeds[name] = try MBTensor(npy: NPY.read(path: parts[0].path)); continue }
                let tensors = try parts.map { try MBTensor(npy: NPY.read(path: $0.path)) }
                feeds[name] = MBTensor(shape: [tensors.reduce(0) { $0 + $1.shape[0] }] + tensors[0].shape.dropFirst(),
                                       floats: tensors.flatMap(\.floats))
            } catch let e as ConversionError { throw e } catch { throw ConversionError(error) }
        }
        return feeds
    }

    /// Entries `rows` of every input (requires `isBatchable`).
    public func batch(_ rows: Range<Int>) throws -> [String: MBTensor] {
        precondition(isBatchable && rows.lowerBound >= 0 && rows.upperBound <= count, "batch \(rows) of \(count) entries")
        var feeds: [String: MBTensor] = [:]
        for (name, parts) in inputs {
            if parts.first?.layout == nil {
                feeds[name] = try pictures(Array(parts[rows]))
                continue
            }
            var pieces: [MBTensor] = []
            var first = 0
            for part in parts {
                let own = first..<(first + part.rows)
                first += part.rows
                let wanted = own.clamped(to: rows)
                guard !wanted.isEmpty else { continue }
                do {
                    pieces.append(try MBTensor(npy: NPY.readRows(path: part.path, rows: (wanted.lowerBound - own.lowerBound)..<(wanted.upperBound - own.lowerBound))))
                } catch { throw ConversionError(error) }
            }
            feeds[name] = pieces.count == 1 ? pieces[0]
                : MBTensor(shape: [rows.count] + pieces[0].shape.dropFirst(), floats: pieces.flatMap(\.floats))
        }
        return feeds
    }

    /// `parts` (image files) decoded and preprocessed, as one batch: every image must give the
    /// same entry shape (the first one's).
    func pictures(_ parts: [Part]) throws -> MBTensor {
        var shape: [Int]?
        var values: [Float] = []
        for part in parts {
            do {
                let image = try Image.read(path: part.path)
                let entry = images.entryShape(height: image.height, width: image.width)
                if let shape, shape != entry {
                    throw ImageError(part.path, "\(image.height)x\(image.width) (height x width) gives an entry of shape \(entry) after preprocessing (\(images)), "
                        + "the first image \(shape); give a resize to HxW or a crop so every image gives the same shape")
                }
                shape = entry
                values += try images.apply(image, path: part.path)
            } catch { throw ConversionError("\(error)") }
        }
        return MBTensor(shape: [parts.count] + (shape ?? []), floats: values)
    }
}
