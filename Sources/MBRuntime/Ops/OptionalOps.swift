import MBCore

/// The tensor forms of OptionalHasElement and OptionalGetElement, used only where the input is a
/// constant tensor (so the node folds; an omitted input is an empty optional). Everywhere else
/// they run as value steps (`SequenceOps`), on optionals of tensors and sequences and on optional
/// graph inputs.
enum OptionalOps {
    static let table: [String: OpTable.Compile] = [
        "OptionalHasElement": { _ in { i, _ in [MBTensor(shape: [], bools: [i[0] != nil])] } },
        "OptionalGetElement": { _ in { i, _ in
            guard let x = i[0] else { throw OpError("the optional input is empty") }
            return [x]
        } },
    ]
}
