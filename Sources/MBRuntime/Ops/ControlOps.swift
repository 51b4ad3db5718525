import MBCore

/// If, Loop, Scan and SequenceMap: subgraphs compiled at load in scopes nested in the node's
/// (they read outer values). If runs the branch its condition picks; Loop runs its body while the
/// trip count and condition allow, carrying values and stacking scan outputs; Scan (opset 9+)
/// runs its body once per slice of its scan inputs; SequenceMap once per element of its
/// sequences. If, Loop and SequenceMap are value steps: what they carry and return may be
/// sequences and optionals.
enum ControlOps {
    static let valueTable: [String: OpTable.ValueCompile] = [
        "If": { n in
            let thenGraph = try n.subgraph("then_branch"), elseGraph = try n.subgraph("else_branch")
            guard thenGraph.outputSlots.count == n.outputCount, elseGraph.outputSlots.count == n.outputCount else {
                throw n.bad("branches produce \(thenGraph.outputSlots.count) and \(elseGraph.outputSlots.count) outputs for \(n.outputCount) node outputs")
            }
            return { i, c in
                let cond = try SequenceOps.tensor(i, 0, "cond")
                guard cond.count == 1 else { throw OpError("cond must hold one value, got shape \(cond.shape)") }
                return try c.runValues(intValues(cond)[0] != 0 ? thenGraph : elseGraph)
            }
        },
        "Loop": { n in
            let body = try n.subgraph("body")
            let carried = n.inputCount - 2
            guard carried >= 0, body.inputSlots.count == carried + 2, body.outputSlots.count >= carried + 1,
                  n.outputCount <= body.outputSlots.count - 1 else {
                throw n.bad("body takes \(body.inputSlots.count) inputs and gives \(body.outputSlots.count) outputs for \(carried) loop-carried values")
            }
            let scans = body.outputSlots.count - 1 - carried
            return { i, c in
                let limit = try i[0].map { _ in try IndexingOps.scalarInt(try SequenceOps.tensor(i, 0, "M"), "M") }
                var keepGoing = try (i.count > 1 ? i[1] : nil).map { _ in try IndexingOps.scalarInt(try SequenceOps.tensor(i, 1, "cond"), "cond") != 0 } ?? true
                var values = try (0..<carried).map { try SequenceOps.required(i, 2 + $0, "v_initial") }
                var stacked = [[MBTensor]](repeating: [], count: scans)
                var iteration = 0
                while keepGoing && (limit.map { iteration < $0 } ?? true) {
                    c.env[body.inputSlots[0]] = MBTensor(Int64(iteration))
                    c.env[body.inputSlots[1]] = MBTensor(shape: [], bools: [keepGoing])
                    for (k, v) in values.enumerated() { c.setValue(v, body.inputSlots[2 + k]) }
                    let out = try c.runValues(body)
                    guard let condOut = out[0].tensor, condOut.count == 1 else { throw OpError("the body's condition output must hold one value, got \(out[0].description)") }
                    keepGoing = intValues(condOut)[0] != 0
                    values = Array(out[1..<(1 + carried)])
                    for k in 0..<scans {
                        guard let t = out[1 + carried + k].tensor else { throw OpError("scan output \(k) is \(out[1 + carried + k].kindName), not a tensor") }
                        stacked[k].append(t)
                    }
                    iteration += 1
                }
                return values + (try stacked.map { .tensor(try stack($0, axis: 0, c)) })
            }
        },
        "SequenceMap": { n in
            let body = try n.subgraph("body")
            guard body.inputSlots.count == n.inputCount, body.outputSlots.count == n.outputCount else {
                throw n.bad("body takes \(body.inputSlots.count) inputs and gives \(body.outputSlots.count) outputs for \(n.inputCount) inputs and \(n.outputCount) outputs")
            }
            return { i, c in
                let first = try SequenceOps.sequence(i, 0)
                let inputs = try i.indices.map { try SequenceOps.required(i, $0, "input") }
                for (k, v) in inputs.enumerated() {
                    if let s = v.sequence, s.count != first.count { throw OpError("input \(k) has \(s.count) tensors, the first sequence \(first.count)") }
                }
                var outputs = [[MBTensor]](repeating: [], count: body.outputSlots.count)
                for e in 0..<first.count {
                    for (k, v) in inputs.enumerated() { c.setValue(v.sequence.map { .tensor($0.tensors[e]) } ?? v, body.inputSlots[k]) }
                    for (k, v) in try c.runValues(body).enumerated() {
                        guard let t = v.tensor else { throw OpError("body output \(k) is \(v.kindName), not a tensor") }
                        outputs[k].append(t)
                    }
                }
                return outputs.map { .sequence(MBSequence($0)) }
            }
        },
    ]

    static let table: [String: OpTable.Compile] = [
        "Scan": { n in
            guard n.opset >= 9 else { throw n.unsupported("Scan before opset 9 (batched, with sequence_lens) is not supported") }
            let body = try n.subgraph("body")
            guard let scanInputs = try n.int("num_scan_inputs"), scanInputs >= 0, scanInputs <= n.inputCount else {
                throw n.bad("num_scan_inputs is required and at most the number of inputs")
            }
            let states = n.inputCount - scanInputs
            let scanOutputs = body.outputSlots.count - states
            guard body.inputSlots.count == n.inputCount, scanOutputs >= 0 else {
                throw n.bad("body takes \(body.inputSlots.count) inputs and gives \(body.outputSlots.count) outputs for \(states) states and \(scanInputs) scan inputs")
            }
            let inAxes = try n.ints("scan_input_axes") ?? Array(repeating: 0, count: scanInputs)
            let inReverse = (try n.ints("scan_input_directions") ?? Array(repeating: 0, count: scanInputs)).map { $0 != 0 }
            let outAxes = try n.ints("scan_output_axes") ?? Array(repeating: 0, count: scanOutputs)
            let outReverse = (try n.ints("scan_output_directions") ?? Array(repeating: 0, count: scanOutputs)).map { $0 != 0 }
            guard inAxes.count == scanInputs, inReverse.count == scanInputs, outAxes.count == scanOutputs, outReverse.count == scanOutputs else {
                throw n.bad("scan axes and directions must list one value per scan input and output")
            }
            return { i, c in
                var values = try (0..<states).map { try i.required($0, "initial_state") }
                let sequences = try (0..<scanInputs).map { try i.required(states + $0, "scan_input") }
                let axes = try sequences.enumerated().map { try normalizeAxis(inAxes[$0.offset], rank: $0.element.rank) }
                let lengths = sequences.enumerated().map { $0.element.shape[axes[$0.offset]] }
                guard let steps = lengths.first, lengths.allSatisfy({ $0 == steps }) else {
                    if lengths.isEmpty { throw OpError("Scan needs at least one scan input") }
                    throw OpError("scan inputs have different lengths \(lengths)")
                }
                var stacked = [[MBTensor]](repeating: [], count: scanOutputs)
                for t in 0..<steps {
                    for (k, v) in values.enumerated() { c.env[body.inputSlots[k]] = v }
                    for (k, x) in sequences.enumerated() {
                        c.env[body.inputSlots[states + k]] = try slice(x, axis: axes[k], at: inReverse[k] ? steps - 1 - t : t, c)
                    }
                    let out = try c.run(body)
                    values = Array(out[0..<states])
                    for k in 0..<scanOutputs { stacked[k].append(out[states + k]) }
                }
                var results = values
                for k in 0..<scanOutputs {
                    let parts = outReverse[k] ? Array(stacked[k].reversed()) : stacked[k]
                    let rank = (parts.first?.rank ?? 0) + 1
                    results.append(try stack(parts, axis: try normalizeAxis(outAxes[k], rank: rank), c))
                }
                return results
            }
        },
    ]

    /// The slice of `x` at index `at` along `axis`, with that axis removed.
    static func slice(_ x: MBTensor, axis: Int, at: Int, _ c: ExecutionContext) throws -> MBTensor {
        let outer = x.shape[..<axis].reduce(1, *), len = x.shape[axis]
        let inner = x.shape[(axis + 1)...].reduce(1, *) * x.elementType.runtimeSize
        var shape = x.shape
        shape.remove(at: axis)
        let out = try c.alloc(x.elementType, shape)
        for o in 0..<outer {
            (out.storage.raw + o * inner).copyMemory(from: x.storage.raw + (o * len + at) * inner, byteCount: inner)
        }
        return out
    }

    /// `parts` (equal shapes and types) stacked along a new axis.
    static func stack(_ parts: [MBTensor], axis: Int, _ c: ExecutionContext) throws -> MBTensor {
        guard let first = parts.first else { return MBTensor(shape: [0], floats: []) }
        guard parts.allSatisfy({ $0.shape == first.shape && $0.elementType == first.elementType }) else {
            throw OpError("scan outputs differ in shape or type between iterations: \(parts.map(\.description))")
        }
        var shape = first.shape
        shape.insert(parts.count, at: axis)
        let out = try c.alloc(first.elementType, shape)
        let outer = first.shape[..<axis].reduce(1, *), inner = first.shape[axis...].reduce(1, *) * first.elementType.runtimeSize
        for o in 0..<outer {
            for (k, p) in parts.enumerated() {
                (out.storage.raw + (o * parts.count + k) * inner).copyMemory(from: p.storage.raw + o * inner, byteCount: inner)
            }
        }
        return out
    }
}
