import MBCore

/// Optional values of tensors, as the runtime holds them: an optional that has a tensor is that
/// tensor, an empty one is an omitted input (as an optional input of any operator is).
/// OptionalHasElement says which; OptionalGetElement passes the tensor on. Optionals of
/// sequences, and optional graph inputs and outputs, are not supported.
enum OptionalOps {
    static let table: [String: OpTable.Compile] = [
        "OptionalHasElement": { _ in { i, _ in [MBTensor(shape: [], bools: [i[0] != nil])] } },
        "OptionalGetElement": { _ in { i, _ in
            guard let x = i[0] else { throw OpError("the optional input is empty") }
            return [x]
        } },
    ]
}
