/// Checks every tensor in a model (initializers, node attributes, subgraphs, functions) for data
/// that disagrees with its shape and type.
enum TensorValidation {
    static func validate(_ model: ONNXModel, file: String) throws(ONNXError) {
        var problem: ONNXError?
        model.forEachTensor { tensor, place in
            guard problem == nil, let message = tensor.dataSizeProblem() else { return }
            problem = ONNXError(.tensorData, file: file, place: place, message)
        }
        if let problem { throw problem }
    }
}
