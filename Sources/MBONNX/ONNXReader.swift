import CONNXProto
import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads `.onnx` files into `ONNXModel` values.
public struct ONNXReader: Sendable {
    public struct Options: Sendable {
        /// Files at or above this size are refused: protobuf length fields stop at 2 GiB, so
        /// bigger models must keep their weights in external data files.
        public var maxFileBytes: Int = (1 << 31) - 1
        /// Deepest message nesting accepted (each subgraph level costs about four).
        public var maxNestingDepth: Int = 256
        /// Most NodeProto messages in the whole file (main graph, subgraphs and functions),
        /// counted before protobuf-c allocates any of them.
        public var maxNodes: Int = 1_000_000
        /// Most values in one repeated field of one attribute (`ints`, `floats`, `strings`,
        /// `tensors`, `graphs`...), counted before protobuf-c allocates them.
        public var maxAttributeValues: Int = 1 << 24
        /// Most elements a tensor may declare through its dims (2^32: 16 GiB of float32).
        /// Checked for every tensor before anything is sized from its shape.
        public var maxTensorElements: Int = 1 << 32
        /// Check every tensor's stored size against its shape and type.
        public var validateTensors: Bool = true
        public init() {}
    }

    public var options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Loads the model at `path`, resolving external data relative to its folder.
    public func load(path: String) throws(ONNXError) -> ONNXModel {
        let size: Int
        do {
            size = try FileMapping.fileSize(path: path)
        } catch {
            if case .open(_, let e) = error, e == ENOENT { throw ONNXError(.fileNotFound, file: path, "no such file") }
            throw ONNXError(.unreadable, file: path, "\(error)")
        }
        guard size < options.maxFileBytes else {
            throw ONNXError(.tooLarge, file: path,
                            "file is \(size) bytes; protobuf models must stay under 2 GiB. Save the weights as ONNX external data (onnx.save(model, path, save_as_external_data=True))")
        }
        let mapping: ByteStorage
        do { mapping = try FileMapping.map(path: path) } catch { throw ONNXError(.unreadable, file: path, "\(error)") }
        var model = try decode(mapping, file: path)
        let folder = ONNXReader.folder(of: path)
        var resolver = ExternalDataResolver(modelFile: path, folder: folder)
        try resolver.resolve(&model)
        if options.validateTensors { try TensorValidation.validate(model, file: path) }
        return model
    }

    /// Decodes a mapped file: tensors' raw_data become slices of `mapping` (RawDataInPlace), so
    /// embedded weights are not copied.
    func decode(_ mapping: ByteStorage, file: String) throws(ONNXError) -> ONNXModel {
        try mapping.withBuffer { (bytes) throws(ONNXError) in try decode(bytes, file: file, inPlace: mapping) }
    }

    /// Decodes model bytes (no external data resolution). `file` names the source in errors.
    public func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws(ONNXError) -> ONNXModel {
        try decode(bytes, file: file, inPlace: nil)
    }

    private func decode(_ bytes: UnsafeRawBufferPointer, file: String, inPlace mapping: ByteStorage?) throws(ONNXError) -> ONNXModel {
        guard bytes.count < options.maxFileBytes else {
            throw ONNXError(.tooLarge, file: file, "model is \(bytes.count) bytes; protobuf models must stay under 2 GiB")
        }
        var check = WireCheck(bytes: bytes, options: options)
        do {
            try check.run(descriptor: mb_model_descriptor())
        } catch {
            throw ONNXError(error.isLimit ? .limitExceeded : .malformed, file: file, place: "byte \(error.offset) (\(error.path))", error.message)
        }
        // With a mapping, protobuf-c unpacks a copy without the raw_data payloads (they stay in
        // the mapping); the copy is freed once decoded.
        let reduced = mapping.flatMap { RawDataInPlace.reduce($0, descriptor: mb_model_descriptor()) }
        let unpacked = reduced.map { r in
            r.bytes.withUnsafeBufferPointer { mb_unpack(mb_model_descriptor(), $0.count, $0.baseAddress) }
        } ?? mb_unpack(mb_model_descriptor(), bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        guard let tree = unpacked else {
            throw ONNXError(.malformed, file: file, "protobuf-c could not unpack the model (out of memory, or an encoding its parser rejects)")
        }
        defer { mb_free_unpacked(tree) }
        let root = UnsafeMutableRawPointer(tree).bindMemory(to: Onnx__ModelProto.self, capacity: 1)
        let model = RawDataInPlace.$current.withValue(reduced?.table) { ProtobufCDecoder.model(root) }
        guard model.graph != nil else {
            if bytes.count == 0 { throw ONNXError(.notAModel, file: file, "file is empty") }
            throw ONNXError(.notAModel, file: file, "not an ONNX model: the protobuf has no graph (field 7 of ModelProto)")
        }
        try checkTensorShapes(model, file: file)
        return model
    }

    /// Every tensor's dims: no negative dimension, no overflowing product, at most
    /// `maxTensorElements` elements.
    func checkTensorShapes(_ model: ONNXModel, file: String) throws(ONNXError) {
        var problem: ONNXError?
        model.forEachTensor { tensor, place in
            guard problem == nil, let (kind, message) = shapeProblem(tensor.dims) else { return }
            problem = ONNXError(kind, file: file, place: place, message)
        }
        if let problem { throw problem }
    }

    func shapeProblem(_ dims: [Int64]) -> (ONNXError.Kind, String)? {
        if let d = dims.first(where: { $0 < 0 }) { return (.tensorData, "shape \(describeShape(dims)) has a negative dimension \(d)") }
        guard let n = elementCount(of: dims) else {
            return (.limitExceeded, "shape \(describeShape(dims)) has more elements than a 64-bit count can hold")
        }
        guard n <= options.maxTensorElements else {
            return (.limitExceeded, "shape \(describeShape(dims)) declares \(n) elements, more than the limit of \(options.maxTensorElements) (ONNXReader.Options.maxTensorElements)")
        }
        return nil
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let f = String(path[..<slash])
        return f.isEmpty ? "/" : f
    }
}

/// A value of ONNX's test data files (onnx-data.proto): a tensor, a sequence or an optional.
public indirect enum ONNXValue: Sendable {
    case tensor(ONNXTensor)
    /// `elemType`: the SequenceProto's DataType (1 tensor, 3 sequence, 5 optional; nil unset).
    case sequence(elemType: Int32?, [ONNXValue])
    /// nil: the empty optional.
    case optional(elemType: Int32?, ONNXValue?)
}

extension ONNXReader {
    /// What a value file holds: its message is not self-describing, so the caller says.
    public enum ValueKind: Sendable { case tensor, sequence, optional }

    /// Loads a serialized TensorProto (the `input_N.pb` / `output_N.pb` files of ONNX's backend
    /// test cases).
    public func loadTensor(path: String) throws(ONNXError) -> ONNXTensor {
        guard case .tensor(let t) = try loadValue(path: path, kind: .tensor) else { throw ONNXError(.malformed, file: path, "not a tensor") }
        return t
    }

    /// Loads a serialized TensorProto, SequenceProto or OptionalProto (a test case's value of a
    /// sequence or optional input or output). Sparse tensor and map elements are refused.
    public func loadValue(path: String, kind: ValueKind) throws(ONNXError) -> ONNXValue {
        let mapping: ByteStorage
        do { mapping = try FileMapping.map(path: path) } catch {
            if case .open(_, let e) = error, e == ENOENT { throw ONNXError(.fileNotFound, file: path, "no such file") }
            throw ONNXError(.unreadable, file: path, "\(error)")
        }
        defer { withExtendedLifetime(mapping) {} }
        let bytes = mapping.buffer
        let descriptor: UnsafePointer<ProtobufCMessageDescriptor> = switch kind {
        case .tensor: mb_tensor_descriptor()!
        case .sequence: mb_sequence_descriptor()!
        case .optional: mb_optional_descriptor()!
        }
        do {
            var check = WireCheck(bytes: bytes, options: options)
            try check.run(descriptor: descriptor)
        } catch {
            throw ONNXError(error.isLimit ? .limitExceeded : .malformed, file: path, place: "byte \(error.offset) (\(error.path))", error.message)
        }
        guard let tree = mb_unpack(descriptor, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw ONNXError(.malformed, file: path, "protobuf-c could not unpack the \(kind)")
        }
        defer { mb_free_unpacked(tree) }
        let raw = UnsafeMutableRawPointer(tree)
        switch kind {
        case .tensor: return .tensor(try checkedTensor(raw.bindMemory(to: Onnx__TensorProto.self, capacity: 1), file: path))
        case .sequence: return try sequence(raw.bindMemory(to: Onnx__SequenceProto.self, capacity: 1), file: path)
        case .optional: return try optional(raw.bindMemory(to: Onnx__OptionalProto.self, capacity: 1), file: path)
        }
    }

    private func checkedTensor(_ m: UnsafeMutablePointer<Onnx__TensorProto>, file: String) throws(ONNXError) -> ONNXTensor {
        let tensor = ProtobufCDecoder.tensor(m)
        if let (kind, problem) = shapeProblem(tensor.dims) { throw ONNXError(kind, file: file, place: "tensor '\(tensor.name ?? "")'", problem) }
        if let problem = tensor.dataSizeProblem() { throw ONNXError(.tensorData, file: file, place: "tensor '\(tensor.name ?? "")'", problem) }
        return tensor
    }

    private func sequence(_ m: UnsafeMutablePointer<Onnx__SequenceProto>, file: String) throws(ONNXError) -> ONNXValue {
        let c = m.pointee
        guard c.n_sparse_tensor_values == 0 else { throw ONNXError(.unsupported, file: file, "sequences of sparse tensors are not supported") }
        var items: [ONNXValue] = []
        for k in 0..<c.n_tensor_values { items.append(.tensor(try checkedTensor(c.tensor_values[k]!, file: file))) }
        for k in 0..<c.n_sequence_values { items.append(try sequence(c.sequence_values[k]!, file: file)) }
        for k in 0..<c.n_optional_values { items.append(try optional(c.optional_values[k]!, file: file)) }
        return .sequence(elemType: c.has_elem_type != 0 ? c.elem_type : nil, items)
    }

    private func optional(_ m: UnsafeMutablePointer<Onnx__OptionalProto>, file: String) throws(ONNXError) -> ONNXValue {
        let c = m.pointee
        let elemType = c.has_elem_type != 0 ? c.elem_type : nil
        guard c.sparse_tensor_value == nil else { throw ONNXError(.unsupported, file: file, "optionals of sparse tensors are not supported") }
        if let t = c.tensor_value { return .optional(elemType: elemType, .tensor(try checkedTensor(t, file: file))) }
        if let s = c.sequence_value { return .optional(elemType: elemType, try sequence(s, file: file)) }
        if let o = c.optional_value { return .optional(elemType: elemType, try optional(o, file: file)) }
        return .optional(elemType: elemType, nil)
    }
}
