import CONNXProto
import MBCore

// protobuf-c tree → Swift values. Everything is copied out except tensors' raw_data: slices of
// the mapped file when decoding a reduced copy (RawDataInPlace), else protobuf-c's malloc'd
// buffers, adopted (the C tree's pointer is cleared so free_unpacked skips them).
// The caller frees the tree right after decoding.

@inline(__always)
private func text(_ p: UnsafeMutablePointer<CChar>?) -> String? {
    p.map { String(cString: $0) }
}

@inline(__always)
private func values<T>(_ n: Int, _ p: UnsafeMutablePointer<T>?) -> [T] {
    guard n > 0, let p else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

@inline(__always)
private func bytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let data = b.data else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: b.len))
}

@inline(__always)
private func messages<C, S>(
    _ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?, _ decode: (UnsafeMutablePointer<C>) throws -> S
) rethrows -> [S] {
    guard n > 0, let p else { return [] }
    var out: [S] = []
    out.reserveCapacity(n)
    for i in 0..<n {
        guard let m = p[i] else { continue }
        out.append(try decode(m))
    }
    return out
}

/// Encodes an opaque sub-message back to bytes so it can travel through Swift untouched.
private func opaque<C>(_ m: UnsafeMutablePointer<C>) -> ONNXOpaqueMessage {
    m.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { msg in
        let size = protobuf_c_message_get_packed_size(msg)
        var out = [UInt8](repeating: 0, count: size)
        out.withUnsafeMutableBufferPointer { _ = protobuf_c_message_pack(msg, $0.baseAddress) }
        return ONNXOpaqueMessage(encoded: out)
    }
}

enum ProtobufCDecoder {
    static func model(_ m: UnsafeMutablePointer<Onnx__ModelProto>) -> ONNXModel {
        let c = m.pointee
        var out = ONNXModel()
        out.irVersion = c.has_ir_version != 0 ? c.ir_version : nil
        out.opsetImports = messages(c.n_opset_import, c.opset_import, opset)
        out.producerName = text(c.producer_name)
        out.producerVersion = text(c.producer_version)
        out.domain = text(c.domain)
        out.modelVersion = c.has_model_version != 0 ? c.model_version : nil
        out.docString = text(c.doc_string)
        out.graph = c.graph.map(graph)
        out.metadataProps = messages(c.n_metadata_props, c.metadata_props, pair)
        out.trainingInfo = messages(c.n_training_info, c.training_info, opaque)
        out.functions = messages(c.n_functions, c.functions, function)
        out.configuration = messages(c.n_configuration, c.configuration, opaque)
        return out
    }

    static func opset(_ m: UnsafeMutablePointer<Onnx__OperatorSetIdProto>) -> ONNXOperatorSetID {
        ONNXOperatorSetID(domain: text(m.pointee.domain), version: m.pointee.has_version != 0 ? m.pointee.version : nil)
    }

    static func pair(_ m: UnsafeMutablePointer<Onnx__StringStringEntryProto>) -> ONNXStringPair {
        ONNXStringPair(key: text(m.pointee.key), value: text(m.pointee.value))
    }

    static func graph(_ m: UnsafeMutablePointer<Onnx__GraphProto>) -> ONNXGraph {
        let c = m.pointee
        var out = ONNXGraph()
        out.nodes = messages(c.n_node, c.node, node)
        out.name = text(c.name)
        out.initializers = messages(c.n_initializer, c.initializer, tensor)
        out.sparseInitializers = messages(c.n_sparse_initializer, c.sparse_initializer, sparseTensor)
        out.docString = text(c.doc_string)
        out.inputs = messages(c.n_input, c.input, valueInfo)
        out.outputs = messages(c.n_output, c.output, valueInfo)
        out.valueInfo = messages(c.n_value_info, c.value_info, valueInfo)
        out.quantizationAnnotation = messages(c.n_quantization_annotation, c.quantization_annotation) { a in
            var t = ONNXTensorAnnotation()
            t.tensorName = text(a.pointee.tensor_name)
            t.quantParameterTensorNames = messages(a.pointee.n_quant_parameter_tensor_names, a.pointee.quant_parameter_tensor_names, pair)
            return t
        }
        out.metadataProps = messages(c.n_metadata_props, c.metadata_props, pair)
        return out
    }

    static func strings(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
        guard n > 0, let p else { return [] }
        return (0..<n).map { text(p[$0]) ?? "" }
    }

    static func node(_ m: UnsafeMutablePointer<Onnx__NodeProto>) -> ONNXNode {
        let c = m.pointee
        var out = ONNXNode()
        out.inputs = strings(c.n_input, c.input)
        out.outputs = strings(c.n_output, c.output)
        out.name = text(c.name)
        out.opType = text(c.op_type)
        out.domain = text(c.domain)
        out.overload = text(c.overload)
        out.attributes = messages(c.n_attribute, c.attribute, attribute)
        out.docString = text(c.doc_string)
        out.metadataProps = messages(c.n_metadata_props, c.metadata_props, pair)
        out.deviceConfigurations = messages(c.n_device_configurations, c.device_configurations, opaque)
        return out
    }

    static func attribute(_ m: UnsafeMutablePointer<Onnx__AttributeProto>) -> ONNXAttribute {
        let c = m.pointee
        var out = ONNXAttribute()
        out.name = text(c.name)
        out.refAttrName = text(c.ref_attr_name)
        out.docString = text(c.doc_string)
        out.type = c.has_type != 0 ? Int32(bitPattern: c.type.rawValue) : nil
        out.f = c.has_f != 0 ? c.f : nil
        out.i = c.has_i != 0 ? c.i : nil
        out.s = c.has_s != 0 ? bytes(c.s) : nil
        out.t = c.t.map(tensor)
        out.g = c.g.map(graph)
        out.sparseTensor = c.sparse_tensor.map(sparseTensor)
        out.tp = c.tp.map(typeProto)
        out.floats = values(c.n_floats, c.floats)
        out.ints = values(c.n_ints, c.ints)
        out.strings = (0..<c.n_strings).map { bytes(c.strings[$0]) }
        out.tensors = messages(c.n_tensors, c.tensors, tensor)
        out.graphs = messages(c.n_graphs, c.graphs, graph)
        out.sparseTensors = messages(c.n_sparse_tensors, c.sparse_tensors, sparseTensor)
        out.typeProtos = messages(c.n_type_protos, c.type_protos, typeProto)
        return out
    }

    static func valueInfo(_ m: UnsafeMutablePointer<Onnx__ValueInfoProto>) -> ONNXValueInfo {
        var out = ONNXValueInfo()
        out.name = text(m.pointee.name)
        out.type = m.pointee.type.map(typeProto)
        out.docString = text(m.pointee.doc_string)
        out.metadataProps = messages(m.pointee.n_metadata_props, m.pointee.metadata_props, pair)
        return out
    }

    static func shape(_ m: UnsafeMutablePointer<Onnx__TensorShapeProto>) -> ONNXShape {
        ONNXShape(dims: messages(m.pointee.n_dim, m.pointee.dim) { d in
            let value: ONNXShape.Dimension.Value
            switch d.pointee.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE: value = .fixed(d.pointee.dim_value)
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM: value = .symbolic(text(d.pointee.dim_param) ?? "")
            default: value = .unknown
            }
            return ONNXShape.Dimension(value: value, denotation: text(d.pointee.denotation))
        })
    }

    static func typeProto(_ m: UnsafeMutablePointer<Onnx__TypeProto>) -> ONNXTypeProto {
        let c = m.pointee
        let value: ONNXTypeProto.Value
        switch c.value_case {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            let t = c.tensor_type!.pointee
            value = .tensor(elemType: t.has_elem_type != 0 ? t.elem_type : nil, shape: t.shape.map(shape))
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            value = .sequence(elemType: c.sequence_type!.pointee.elem_type.map(typeProto))
        case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
            let t = c.map_type!.pointee
            value = .map(keyType: t.has_key_type != 0 ? t.key_type : nil, valueType: t.value_type.map(typeProto))
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            value = .optional(elemType: c.optional_type!.pointee.elem_type.map(typeProto))
        case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
            let t = c.sparse_tensor_type!.pointee
            value = .sparseTensor(elemType: t.has_elem_type != 0 ? t.elem_type : nil, shape: t.shape.map(shape))
        case ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE:
            let t = c.opaque_type!.pointee
            value = .opaque(domain: text(t.domain), name: text(t.name))
        default:
            value = .notSet
        }
        return ONNXTypeProto(value: value, denotation: text(c.denotation))
    }

    static func sparseTensor(_ m: UnsafeMutablePointer<Onnx__SparseTensorProto>) -> ONNXSparseTensor {
        var out = ONNXSparseTensor()
        out.values = m.pointee.values.map(tensor)
        out.indices = m.pointee.indices.map(tensor)
        out.dims = values(m.pointee.n_dims, m.pointee.dims)
        return out
    }

    static func tensor(_ m: UnsafeMutablePointer<Onnx__TensorProto>) -> ONNXTensor {
        let c = m.pointee
        var out = ONNXTensor()
        out.dims = values(c.n_dims, c.dims)
        out.dataType = c.has_data_type != 0 ? c.data_type : nil
        if let s = c.segment {
            out.segment = .init(begin: s.pointee.has_begin != 0 ? s.pointee.begin : nil,
                                end: s.pointee.has_end != 0 ? s.pointee.end : nil)
        }
        out.floatData = values(c.n_float_data, c.float_data)
        out.int32Data = values(c.n_int32_data, c.int32_data)
        out.stringData = (0..<c.n_string_data).map { bytes(c.string_data[$0]) }
        out.int64Data = values(c.n_int64_data, c.int64_data)
        out.name = text(c.name)
        out.docString = text(c.doc_string)
        if c.has_raw_data != 0 {
            if c.raw_data.len > 0, let data = c.raw_data.data, let inPlace = RawDataInPlace.current {
                // Decoding a reduced copy: the payload is an index into the mapped file.
                out.rawData = inPlace.slice(forIndex: UnsafeRawBufferPointer(start: data, count: c.raw_data.len))
            } else if c.raw_data.len > 0, let data = c.raw_data.data {
                // Adopt protobuf-c's malloc'd copy instead of copying it again.
                out.rawData = ByteSlice(storage: ByteStorage(base: UnsafeRawPointer(data), count: c.raw_data.len, owner: .malloc))
                m.pointee.raw_data.data = nil
                m.pointee.raw_data.len = 0
            } else {
                out.rawData = .empty
            }
        }
        out.externalData = messages(c.n_external_data, c.external_data, pair)
        out.dataLocation = c.has_data_location != 0 ? Int32(bitPattern: c.data_location.rawValue) : nil
        out.doubleData = values(c.n_double_data, c.double_data)
        out.uint64Data = values(c.n_uint64_data, c.uint64_data)
        out.metadataProps = messages(c.n_metadata_props, c.metadata_props, pair)
        return out
    }

    static func function(_ m: UnsafeMutablePointer<Onnx__FunctionProto>) -> ONNXFunction {
        let c = m.pointee
        var out = ONNXFunction()
        out.name = text(c.name)
        out.inputs = strings(c.n_input, c.input)
        out.outputs = strings(c.n_output, c.output)
        out.attributeNames = strings(c.n_attribute, c.attribute)
        out.attributeProtos = messages(c.n_attribute_proto, c.attribute_proto, attribute)
        out.nodes = messages(c.n_node, c.node, node)
        out.docString = text(c.doc_string)
        out.opsetImports = messages(c.n_opset_import, c.opset_import, opset)
        out.domain = text(c.domain)
        out.overload = text(c.overload)
        out.valueInfo = messages(c.n_value_info, c.value_info, valueInfo)
        out.metadataProps = messages(c.n_metadata_props, c.metadata_props, pair)
        return out
    }
}
