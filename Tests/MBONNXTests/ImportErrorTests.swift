import Foundation
import MBCore
import MBONNX
import Testing

/// Every way a file can be broken gets an error naming the file, the place and the problem.
@Suite struct ImportErrorTests {
    func loadError(_ path: String, options: ONNXReader.Options = .init()) -> ONNXError? {
        do {
            _ = try ONNXReader(options: options).load(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test func missingFile() {
        let e = loadError("/nonexistent/model.onnx")
        #expect(e?.kind == .fileNotFound)
        #expect(e?.description == "/nonexistent/model.onnx: no such file")
    }

    @Test func emptyFileIsNotAModel() {
        let dir = ModelBuilder.temporaryDirectory()
        let path = dir.appendingPathComponent("empty.onnx")
        ModelBuilder.write([], to: path)
        let e = loadError(path.path)
        #expect(e?.kind == .notAModel)
        #expect(e?.description == "\(path.path): file is empty")
    }

    @Test func textFileIsRejectedWithItsOffset() {
        let dir = ModelBuilder.temporaryDirectory()
        let path = dir.appendingPathComponent("notes.onnx")
        ModelBuilder.write(Array("hello, this is not a model\n".utf8), to: path)
        let e = loadError(path.path)
        #expect(e?.kind == .malformed)
        // 'h' = 0x68: field 13, wire type 0 (varint) for ModelProto: 13 is unknown, so it reads a
        // varint 'e'; then 'l' = 0x6C: field 13 wire type 4 (end group), which ONNX never uses.
        #expect(e?.description == "\(path.path): byte 2 (ModelProto.<field 13>): group wire type (deprecated in protobuf, never used by ONNX)")
    }

    @Test func truncationAtEveryOffsetIsAnErrorNeverACrash() throws {
        let model = ModelBuilder.convModel(weights: [1, 2])
        let bytes = try ONNXWriter().encode(model)
        let dir = ModelBuilder.temporaryDirectory()
        let path = dir.appendingPathComponent("cut.onnx")
        var accepted: [Int] = []
        for cut in 0..<bytes.count {
            ModelBuilder.write(Array(bytes[..<cut]), to: path)
            if loadError(path.path) == nil { accepted.append(cut) }
        }
        // A prefix that ends exactly between top-level fields is a valid (smaller) protobuf, but
        // without a graph it is not a model: only cuts after the whole graph field (field 7,
        // followed only by opset_import, field 8) may load.
        var withoutOpsets = model
        withoutOpsets.opsetImports = []
        let graphEnd = try ONNXWriter().encode(withoutOpsets).count
        #expect(Array(bytes[..<graphEnd]) == (try ONNXWriter().encode(withoutOpsets)))
        #expect(accepted == [graphEnd], "accepted truncated prefixes: \(accepted), graph ends at \(graphEnd) of \(bytes.count)")
    }

    @Test func truncatedRawDataNamesTheField() throws {
        let model = ModelBuilder.convModel(weights: Array(repeating: 0.5, count: 64), dims: [64, 1, 1, 1])
        let bytes = try ONNXWriter().encode(model)
        let dir = ModelBuilder.temporaryDirectory()
        let path = dir.appendingPathComponent("truncated.onnx")
        ModelBuilder.write(Array(bytes.dropLast(40)), to: path)
        let e = loadError(path.path)
        #expect(e?.kind == .malformed)
        #expect(e?.description.contains("ModelProto.graph") == true, "\(String(describing: e))")
        #expect(e?.description.contains("file truncated?") == true, "\(String(describing: e))")
    }

    @Test func tensorDataDisagreeingWithShape() throws {
        for raw in [true, false] {
            let model = ModelBuilder.convModel(weights: [1, 2, 3], dims: [2, 1, 1, 1], raw: raw)
            let dir = ModelBuilder.temporaryDirectory()
            let path = dir.appendingPathComponent("mismatch.onnx").path
            try ONNXWriter().write(model, to: path)
            let e = loadError(path)
            #expect(e?.kind == .tensorData)
            let expected = raw
                ? "\(path): graph initializer 'w': raw_data holds 12 bytes, shape [2, 1, 1, 1] of float needs 8"
                : "\(path): graph initializer 'w': float_data holds 3 values, shape [2, 1, 1, 1] of float needs 2"
            #expect(e?.description == expected)
        }
    }

    /// Packed sub-byte tensors: raw_data must be exactly ceil(count × bits / 8) bytes.
    @Test func subByteTensorOfTheWrongByteLength() throws {
        for (type, dims, bytes, need) in [(ElementType.int4, [Int64(3)], 1, 2), (.uint4, [2, 2], 3, 2), (.int2, [5], 1, 2), (.float4e2m1, [4], 3, 2)] {
            var model = ModelBuilder.convModel(weights: [1, 2], dims: [2, 1, 1, 1])
            var t = ONNXTensor()
            t.name = "packed"
            t.dataType = type.rawValue
            t.dims = dims
            t.rawData = ByteSlice(copying: [UInt8](repeating: 0x11, count: bytes))
            model.graph!.initializers.append(t)
            let path = ModelBuilder.temporaryDirectory().appendingPathComponent("packed.onnx").path
            try ONNXWriter().write(model, to: path)
            let e = loadError(path)
            #expect(e?.kind == .tensorData)
            #expect(e?.description == "\(path): graph initializer 'packed': raw_data holds \(bytes) bytes, shape \(describeShape(dims)) of \(type.name) needs \(need)")
        }
    }

    @Test func nestingDeeperThanTheLimitIsRefused() throws {
        // TypeProto.sequence_type.elem_type nests without bound; build 40 levels and allow 20.
        var type = ONNXTypeProto(value: .tensor(elemType: 1, shape: nil))
        for _ in 0..<40 { type = ONNXTypeProto(value: .sequence(elemType: type)) }
        var model = ModelBuilder.convModel(weights: [1, 2])
        model.graph!.inputs[0].type = type
        let dir = ModelBuilder.temporaryDirectory()
        let path = dir.appendingPathComponent("deep.onnx").path
        try ONNXWriter().write(model, to: path)
        var options = ONNXReader.Options()
        options.maxNestingDepth = 20
        let e = loadError(path, options: options)
        #expect(e?.kind == .limitExceeded)
        #expect(e?.description.contains("nested deeper than 20 levels") == true, "\(String(describing: e))")
        #expect(loadError(path) == nil)
    }

    @Test func modelsOf2GiBAreRefusedWithAHint() throws {
        // A sparse file: 2 GiB long, no disk blocks used, refused before it is read.
        let dir = ModelBuilder.temporaryDirectory()
        let path = dir.appendingPathComponent("huge.onnx").path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(ftruncate(fd, 1 << 31) == 0)
        close(fd)
        let e = loadError(path)
        #expect(e?.kind == .tooLarge)
        #expect(e?.description.contains("save_as_external_data=True") == true)
    }

    @Test func exportOf2GiBIsRefused() throws {
        // Raw data that claims 2 GiB through a sparse mapping; the writer refuses before writing.
        let dir = ModelBuilder.temporaryDirectory()
        let blob = dir.appendingPathComponent("blob").path
        let fd = open(blob, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        #expect(ftruncate(fd, 1 << 31) == 0)
        close(fd)
        let storage = try FileMapping.map(path: blob)
        var model = ModelBuilder.convModel(weights: [1, 2])
        model.graph!.initializers[0].rawData = ByteSlice(storage: storage)
        model.graph!.initializers[0].dims = [1 << 29]
        let out = dir.appendingPathComponent("out.onnx").path
        #expect(throws: ONNXError.self) { try ONNXWriter().write(model, to: out) }
        do { try ONNXWriter().write(model, to: out) } catch {
            #expect(error.kind == .exportTooLarge)
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.count == 1)
    }
}
