import MBCore

/// Concat without copies: the producers of a Concat's inputs write their outputs straight into
/// the Concat's buffer, so the Concat has nothing left to copy (SqueezeNet's fire modules, a
/// U-Net's skip connections, YOLO's neck). Where each input lands is only known at run time
/// (shapes follow the inputs), so a session remembers each Concat's layout from its last run
/// (`ConcatLayouts`); from the next run on, the first producer takes the Concat's buffer from
/// the pool and each producer's output is a view of its slice.
///
/// Soundness does not rest on the plan: the Concat checks each input's address and copies any
/// input that is not already where it belongs (a producer that allocated a temporary of the same
/// size first, shapes that changed since the last run, a transformed output). Only Concats whose
/// inputs are contiguous slices of the output (every axis before the concatenated one of size 1,
/// e.g. channels of one image) are placed.
///
/// A Split whose parts a Concat takes in order (YOLO's C2f/C3k2 blocks: a convolution, split in
/// two, one half through bottlenecks, both halves and the bottlenecks' outputs concatenated)
/// places the Split's input instead: its producer writes into the slice of all the parts, the
/// parts are views of it (Split of one image), and the Concat finds them where they belong.
enum ConcatPlacement {
    /// Marks, in one compiled graph, the steps whose output a later Concat reads: the step has
    /// one output, no subgraph, and is not itself a placed Concat; its value feeds that Concat
    /// once and is not a graph output. A value read by two Concats is placed into the first.
    static func plan(_ steps: inout [Step], captures: [Set<Int>], keep: Set<Int>) {
        var producer: [Int: Int] = [:]
        for (i, step) in steps.enumerated() where step.outputs.count == 1 && step.outputs[0] >= 0 && captures[i].isEmpty {
            producer[step.outputs[0]] = i
        }
        // Value slot → the Split step that makes it.
        var splitOf: [Int: Int] = [:]
        for (i, step) in steps.enumerated() where step.opType == "Split" && captures[i].isEmpty && !step.inputs.isEmpty {
            for o in step.outputs where o >= 0 { splitOf[o] = i }
        }
        for i in steps.indices where steps[i].opType == "Concat" && steps[i].outputs.count == 1 && steps[i].outputs[0] >= 0 {
            let inputs = steps[i].inputs
            var k = 0
            while k < inputs.count {
                let s = inputs[k]
                defer { k += 1 }
                guard s >= 0, !keep.contains(s) else { continue }
                if let q = splitOf[s], q < i, case let parts = steps[q].outputs, parts.count > 1, parts.first == s,
                   Array(inputs[k..<min(k + parts.count, inputs.count)]) == parts,
                   parts.allSatisfy({ part in !keep.contains(part) && inputs.lazy.filter { $0 == part }.count == 1 }),
                   let whole = steps[q].inputs.first, whole >= 0, !keep.contains(whole),
                   let p = producer[whole], p < q, !steps[p].placesInputs, steps[p].placeInto == nil {
                    steps[p].placeInto = (steps[i].outputs[0], k, parts.count)
                    steps[i].placesInputs = true
                    k += parts.count - 1
                    continue
                }
                guard let p = producer[s], p < i, !steps[p].placesInputs, steps[p].placeInto == nil,
                      inputs.lazy.filter({ $0 == s }).count == 1 else { continue }
                steps[p].placeInto = (steps[i].outputs[0], k, 1)
                steps[i].placesInputs = true
            }
        }
    }
}

/// Where each input of a Concat went in its last run, by the Concat's output slot. One per
/// session (a model's slots are fixed; the layout changes only when input shapes do).
final class ConcatLayouts: @unchecked Sendable {
    struct Layout {
        let elementType: ElementType
        let bytes: Int
        /// Per input index: byte offset and size in the output (nil for an omitted input).
        let parts: [(offset: Int, bytes: Int)?]
    }

    private(set) var layouts: [Int: Layout] = [:]

    func layout(_ slot: Int) -> Layout? { layouts[slot] }
    func record(_ slot: Int, _ layout: Layout?) { layouts[slot] = layout }
}

extension ExecutionContext {
    /// Before a step placed into a Concat runs: reserves that Concat's buffer (once per run) and
    /// offers the step's slice of it to the step's first allocation of matching size.
    func preparePlacement(_ p: (concat: Int, input: Int, count: Int)) {
        guard let layouts = concatLayouts, let layout = layouts.layout(p.concat), p.input + p.count <= layout.parts.count,
              let first = layout.parts[p.input] else { return }
        // The parts are consecutive in the buffer: their slice starts at the first.
        var bytes = 0
        for k in p.input..<p.input + p.count {
            guard let part = layout.parts[k], part.offset == first.offset + bytes else { return }
            bytes += part.bytes
        }
        let part = (offset: first.offset, bytes: bytes)
        let parent: TensorStorage
        if let r = reservedConcats[p.concat] {
            parent = r
        } else {
            parent = pool.take(byteCount: layout.bytes)
            reservedConcats[p.concat] = parent
        }
        pendingPlacement = (TensorStorage(borrowing: parent.raw + part.offset, byteCount: part.bytes, owner: parent), layout.elementType)
    }

    /// The pending placement, if it fits an output of `type` and `bytes` (taken once).
    func takePlacement(_ type: ElementType, bytes: Int) -> TensorStorage? {
        guard let p = pendingPlacement, p.type == type, p.storage.byteCount == bytes else { return nil }
        pendingPlacement = nil
        return p.storage
    }

    /// For the Concat step now running: the buffer its producers were placed into, if it has
    /// the size and type of the output.
    func takeConcatBuffer(_ type: ElementType, bytes: Int) -> TensorStorage? {
        guard let slot = runningConcat, let r = reservedConcats.removeValue(forKey: slot),
              r.byteCount == bytes, concatLayouts?.layout(slot)?.elementType == type else { return nil }
        return r
    }

    /// Records the layout of the Concat now running (nil: its inputs are not contiguous slices).
    func recordConcatLayout(_ layout: ConcatLayouts.Layout?) {
        guard let slot = runningConcat, let layouts = concatLayouts else { return }
        layouts.record(slot, layout)
    }
}
