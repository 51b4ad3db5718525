import CONNXProto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MBCore

/// Builds a protobuf-c tree from Swift values for packing. Every allocation is recorded and
/// released by `release()`; tensor payloads are referenced, not copied, so the Swift model must
/// outlive the packing (the caller holds it).
final class ProtobufCEncoder {
    private var allocations: [UnsafeMutableRawPointer] = []
    private var unpackedTrees: [UnsafeMutablePointer<ProtobufCMessage>] = []

    deinit { release() }

    func release() {
        for p in allocations { free(p) }
        allocations.removeAll()
        for t in unpackedTrees { mb_free_unpacked(t) }
        unpackedTrees.removeAll()
    }

    // MARK: allocation

    private func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    private func text(_ s: String?) -> UnsafeMutablePointer<CChar>? {
        guard let s else { return nil }
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    private func array<T>(_ a: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        guard !a.isEmpty else { return (0, nil) }
        let p = allocate(T.self, count: a.count)
        p.initialize(from: a, count: a.count)
        return (a.count, p)
    }

    private func binary(_ b: [UInt8]) -> ProtobufCBinaryData {
        guard !b.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let (n, p) = array(b)
        return ProtobufCBinaryData(len: n, data: p)
    }

    private func binaries(_ list: [[UInt8]]) -> (Int, UnsafeMutablePointer<ProtobufCBinaryData>?) {
        array(list.map(binary))
    }

    private func texts(_ list: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        array(list.map { text($0) })
    }

    private func messages<S, C>(_ list: [S], _ encode: (S) -> UnsafeMutablePointer<C>)
        -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<C>?>?)
    {
        array(list.map { Optional(encode($0)) })
    }

    private func new<C>(_ type: C.Type, _ initialize: (UnsafeMutablePointer<C>) -> Void) -> UnsafeMutablePointer<C> {
        let p = allocate(C.self)
        initialize(p)
        return p
    }

    private func opaque<C>(_ message: ONNXOpaqueMessage, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> UnsafeMutablePointer<C> {
        let tree = message.encoded.withUnsafeBufferPointer { mb_unpack(descriptor, $0.count, $0.baseAddress) }
        // These bytes came out of protobuf-c's own packer, so they unpack.
        guard let tree else { fatalError("opaque ONNX message failed to unpack") }
        unpackedTrees.append(tree)
        return UnsafeMutableRawPointer(tree).bindMemory(to: C.self, capacity: 1)
    }

    // MARK: messages

    func model(_ s: ONNXModel) -> UnsafeMutablePointer<Onnx__ModelProto> {
        new(Onnx__ModelProto.self) { m in
            onnx__model_proto__init(m)
            if let v = s.irVersion { m.pointee.has_ir_version = 1; m.pointee.ir_version = v }
            (m.pointee.n_opset_import, m.pointee.opset_import) = messages(s.opsetImports, opset)
            m.pointee.producer_name = text(s.producerName)
            m.pointee.producer_version = text(s.producerVersion)
            m.pointee.domain = text(s.domain)
            if let v = s.modelVersion { m.pointee.has_model_version = 1; m.pointee.model_version = v }
            m.pointee.doc_string = text(s.docString)
            m.pointee.graph = s.graph.map(graph)
            (m.pointee.n_metadata_props, m.pointee.metadata_props) = messages(s.metadataProps, pair)
            (m.pointee.n_training_info, m.pointee.training_info) = messages(s.trainingInfo) {
                opaque($0, mb_training_info_descriptor())
            }
            (m.pointee.n_functions, m.pointee.functions) = messages(s.functions, function)
            (m.pointee.n_configuration, m.pointee.configuration) = messages(s.configuration) {
                opaque($0, mb_device_configuration_descriptor())
            }
        }
    }

    func opset(_ s: ONNXOperatorSetID) -> UnsafeMutablePointer<Onnx__OperatorSetIdProto> {
        new(Onnx__OperatorSetIdProto.self) { m in
            onnx__operator_set_id_proto__init(m)
            m.pointee.domain = text(s.domain)
            if let v = s.version { m.pointee.has_version = 1; m.pointee.version = v }
        }
    }

    func pair(_ s: ONNXStringPair) -> UnsafeMutablePointer<Onnx__StringStringEntryProto> {
        new(Onnx__StringStringEntryProto.self) { m in
            onnx__string_string_entry_proto__init(m)
            m.pointee.key = text(s.key)
            m.pointee.value = text(s.value)
        }
    }

    func graph(_ s: ONNXGraph) -> UnsafeMutablePointer<Onnx__GraphProto> {
        new(Onnx__GraphProto.self) { m in
            onnx__graph_proto__init(m)
            (m.pointee.n_node, m.pointee.node) = messages(s.nodes, node)
            m.pointee.name = text(s.name)
            (m.pointee.n_initializer, m.pointee.initializer) = messages(s.initializers, tensor)
            (m.pointee.n_sparse_initializer, m.pointee.sparse_initializer) = messages(s.sparseInitializers, sparseTensor)
            m.pointee.doc_string = text(s.docString)
            (m.pointee.n_input, m.pointee.input) = messages(s.inputs, valueInfo)
            (m.pointee.n_output, m.pointee.output) = messages(s.outputs, valueInfo)
            (m.pointee.n_value_info, m.pointee.value_info) = messages(s.valueInfo, valueInfo)
            (m.pointee.n_quantization_annotation, m.pointee.quantization_annotation) = messages(s.quantizationAnnotation) { a in
                self.new(Onnx__TensorAnnotation.self) { t in
                    onnx__tensor_annotation__init(t)
                    t.pointee.tensor_name = self.text(a.tensorName)
                    (t.pointee.n_quant_parameter_tensor_names, t.pointee.quant_parameter_tensor_names) =
                        self.messages(a.quantParameterTensorNames, self.pair)
                }
            }
            (m.pointee.n_metadata_props, m.pointee.metadata_props) = messages(s.metadataProps, pair)
        }
    }

    func node(_ s: ONNXNode) -> UnsafeMutablePointer<Onnx__NodeProto> {
        new(Onnx__NodeProto.self) { m in
            onnx__node_proto__init(m)
            (m.pointee.n_input, m.pointee.input) = texts(s.inputs)
            (m.pointee.n_output, m.pointee.output) = texts(s.outputs)
            m.pointee.name = text(s.name)
            m.pointee.op_type = text(s.opType)
            m.pointee.domain = text(s.domain)
            m.pointee.overload = text(s.overload)
            (m.pointee.n_attribute, m.pointee.attribute) = messages(s.attributes, attribute)
            m.pointee.doc_string = text(s.docString)
            (m.pointee.n_metadata_props, m.pointee.metadata_props) = messages(s.metadataProps, pair)
            (m.pointee.n_device_configurations, m.pointee.device_configurations) = messages(s.deviceConfigurations) {
                opaque($0, mb_node_device_configuration_descriptor())
            }
        }
    }

    func attribute(_ s: ONNXAttribute) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        new(Onnx__AttributeProto.self) { m in
            onnx__attribute_proto__init(m)
            m.pointee.name = text(s.name)
            m.pointee.ref_attr_name = text(s.refAttrName)
            m.pointee.doc_string = text(s.docString)
            if let v = s.type { m.pointee.has_type = 1; m.pointee.type = Onnx__AttributeProto__AttributeType(UInt32(bitPattern: v)) }
            if let v = s.f { m.pointee.has_f = 1; m.pointee.f = v }
            if let v = s.i { m.pointee.has_i = 1; m.pointee.i = v }
            if let v = s.s { m.pointee.has_s = 1; m.pointee.s = binary(v) }
            m.pointee.t = s.t.map(tensor)
            m.pointee.g = s.g.map(graph)
            m.pointee.sparse_tensor = s.sparseTensor.map(sparseTensor)
            m.pointee.tp = s.tp.map(typeProto)
            (m.pointee.n_floats, m.pointee.floats) = array(s.floats)
            (m.pointee.n_ints, m.pointee.ints) = array(s.ints)
            (m.pointee.n_strings, m.pointee.strings) = binaries(s.strings)
            (m.pointee.n_tensors, m.pointee.tensors) = messages(s.tensors, tensor)
            (m.pointee.n_graphs, m.pointee.graphs) = messages(s.graphs, graph)
            (m.pointee.n_sparse_tensors, m.pointee.sparse_tensors) = messages(s.sparseTensors, sparseTensor)
            (m.pointee.n_type_protos, m.pointee.type_protos) = messages(s.typeProtos, typeProto)
        }
    }

    func valueInfo(_ s: ONNXValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        new(Onnx__ValueInfoProto.self) { m in
            onnx__value_info_proto__init(m)
            m.pointee.name = text(s.name)
            m.pointee.type = s.type.map(typeProto)
            m.pointee.doc_string = text(s.docString)
            (m.pointee.n_metadata_props, m.pointee.metadata_props) = messages(s.metadataProps, pair)
        }
    }

    func shape(_ s: ONNXShape) -> UnsafeMutablePointer<Onnx__TensorShapeProto> {
        new(Onnx__TensorShapeProto.self) { m in
            onnx__tensor_shape_proto__init(m)
            (m.pointee.n_dim, m.pointee.dim) = messages(s.dims) { d in
                self.new(Onnx__TensorShapeProto__Dimension.self) { p in
                    onnx__tensor_shape_proto__dimension__init(p)
                    p.pointee.denotation = self.text(d.denotation)
                    switch d.value {
                    case .unknown: break
                    case .fixed(let v):
                        p.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        p.pointee.dim_value = v
                    case .symbolic(let name):
                        p.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        p.pointee.dim_param = self.text(name)
                    }
                }
            }
        }
    }

    func typeProto(_ s: ONNXTypeProto) -> UnsafeMutablePointer<Onnx__TypeProto> {
        new(Onnx__TypeProto.self) { m in
            onnx__type_proto__init(m)
            m.pointee.denotation = text(s.denotation)
            switch s.value {
            case .notSet: break
            case .tensor(let elemType, let shape):
                m.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                m.pointee.tensor_type = new(Onnx__TypeProto__Tensor.self) { t in
                    onnx__type_proto__tensor__init(t)
                    if let e = elemType { t.pointee.has_elem_type = 1; t.pointee.elem_type = e }
                    t.pointee.shape = shape.map(self.shape)
                }
            case .sequence(let elemType):
                m.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE
                m.pointee.sequence_type = new(Onnx__TypeProto__Sequence.self) { t in
                    onnx__type_proto__sequence__init(t)
                    t.pointee.elem_type = elemType.map(self.typeProto)
                }
            case .map(let keyType, let valueType):
                m.pointee.value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE
                m.pointee.map_type = new(Onnx__TypeProto__Map.self) { t in
                    onnx__type_proto__map__init(t)
                    if let k = keyType { t.pointee.has_key_type = 1; t.pointee.key_type = k }
                    t.pointee.value_type = valueType.map(self.typeProto)
                }
            case .optional(let elemType):
                m.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE
                m.pointee.optional_type = new(Onnx__TypeProto__Optional.self) { t in
                    onnx__type_proto__optional__init(t)
                    t.pointee.elem_type = elemType.map(self.typeProto)
                }
            case .sparseTensor(let elemType, let shape):
                m.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE
                m.pointee.sparse_tensor_type = new(Onnx__TypeProto__SparseTensor.self) { t in
                    onnx__type_proto__sparse_tensor__init(t)
                    if let e = elemType { t.pointee.has_elem_type = 1; t.pointee.elem_type = e }
                    t.pointee.shape = shape.map(self.shape)
                }
            case .opaque(let domain, let name):
                m.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE
                m.pointee.opaque_type = new(Onnx__TypeProto__Opaque.self) { t in
                    onnx__type_proto__opaque__init(t)
                    t.pointee.domain = self.text(domain)
                    t.pointee.name = self.text(name)
                }
            }
        }
    }

    func sparseTensor(_ s: ONNXSparseTensor) -> UnsafeMutablePointer<Onnx__SparseTensorProto> {
        new(Onnx__SparseTensorProto.self) { m in
            onnx__sparse_tensor_proto__init(m)
            m.pointee.values = s.values.map(tensor)
            m.pointee.indices = s.indices.map(tensor)
            (m.pointee.n_dims, m.pointee.dims) = array(s.dims)
        }
    }

    func tensor(_ s: ONNXTensor) -> UnsafeMutablePointer<Onnx__TensorProto> {
        new(Onnx__TensorProto.self) { m in
            onnx__tensor_proto__init(m)
            (m.pointee.n_dims, m.pointee.dims) = array(s.dims)
            if let v = s.dataType { m.pointee.has_data_type = 1; m.pointee.data_type = v }
            if let seg = s.segment {
                m.pointee.segment = new(Onnx__TensorProto__Segment.self) { p in
                    onnx__tensor_proto__segment__init(p)
                    if let b = seg.begin { p.pointee.has_begin = 1; p.pointee.begin = b }
                    if let e = seg.end { p.pointee.has_end = 1; p.pointee.end = e }
                }
            }
            (m.pointee.n_float_data, m.pointee.float_data) = array(s.floatData)
            (m.pointee.n_int32_data, m.pointee.int32_data) = array(s.int32Data)
            (m.pointee.n_string_data, m.pointee.string_data) = binaries(s.stringData)
            (m.pointee.n_int64_data, m.pointee.int64_data) = array(s.int64Data)
            m.pointee.name = text(s.name)
            m.pointee.doc_string = text(s.docString)
            if let raw = s.rawData {
                m.pointee.has_raw_data = 1
                // Referenced, not copied: the caller keeps `s` (and so the storage) alive.
                let base = raw.storage.base.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self)) + raw.offset }
                m.pointee.raw_data = ProtobufCBinaryData(len: raw.count, data: raw.count > 0 ? base : nil)
            }
            (m.pointee.n_external_data, m.pointee.external_data) = messages(s.externalData, pair)
            if let v = s.dataLocation {
                m.pointee.has_data_location = 1
                m.pointee.data_location = Onnx__TensorProto__DataLocation(UInt32(bitPattern: v))
            }
            (m.pointee.n_double_data, m.pointee.double_data) = array(s.doubleData)
            (m.pointee.n_uint64_data, m.pointee.uint64_data) = array(s.uint64Data)
            (m.pointee.n_metadata_props, m.pointee.metadata_props) = messages(s.metadataProps, pair)
        }
    }

    func function(_ s: ONNXFunction) -> UnsafeMutablePointer<Onnx__FunctionProto> {
        new(Onnx__FunctionProto.self) { m in
            onnx__function_proto__init(m)
            m.pointee.name = text(s.name)
            (m.pointee.n_input, m.pointee.input) = texts(s.inputs)
            (m.pointee.n_output, m.pointee.output) = texts(s.outputs)
            (m.pointee.n_attribute, m.pointee.attribute) = texts(s.attributeNames)
            (m.pointee.n_attribute_proto, m.pointee.attribute_proto) = messages(s.attributeProtos, attribute)
            (m.pointee.n_node, m.pointee.node) = messages(s.nodes, node)
            m.pointee.doc_string = text(s.docString)
            (m.pointee.n_opset_import, m.pointee.opset_import) = messages(s.opsetImports, opset)
            m.pointee.domain = text(s.domain)
            m.pointee.overload = text(s.overload)
            (m.pointee.n_value_info, m.pointee.value_info) = messages(s.valueInfo, valueInfo)
            (m.pointee.n_metadata_props, m.pointee.metadata_props) = messages(s.metadataProps, pair)
        }
    }
}
