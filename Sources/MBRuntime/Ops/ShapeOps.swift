import MBCore

/// Operators that change only the shape (views of the same buffer) or report it.
enum ShapeOps {
    static let table: [String: OpTable.Compile] = [
        "Identity": { _ in { i, _ in [try i.required(0)] } },
        "Dropout": { _ in
            // Inference: the output is the input (older opsets' is_test makes no difference here).
            return { i, c in
                let x = try i.required(0)
                // Training mode drops a random fraction `ratio`: with ratio 0 nothing is dropped
                // (the output is the input); any other ratio draws a mask we cannot reproduce.
                if let t = i[2], t.count == 1, intValues(t)[0] != 0 {
                    let ratio = try i[1].map { try floatScalar(castTensor($0, to: .float, c)) } ?? 0.5
                    if ratio != 0 { throw OpError("training_mode=true with ratio \(ratio) draws a random mask (inference only; ratio 0 runs)", kind: .unsupportedOperator) }
                }
                let mask = try c.alloc(.bool, x.shape)
                mask.storage.raw.initializeMemory(as: UInt8.self, repeating: 1, count: x.count)
                return [x, mask]
            }
        },
        "Reshape": { n in
            let attrShape = n.opset < 5 ? try n.ints("shape") : nil
            let allowZero = try n.int("allowzero", default: 0) != 0
            let legacy = n.opset < 5
            return { i, _ in
                let x = try i.required(0)
                let spec: [Int]
                if legacy {
                    guard let attrShape else { throw OpError("attribute 'shape' is required") }
                    spec = attrShape
                } else {
                    spec = intValues(try i.required(1, "shape"))
                }
                return [x.reshaped(try reshapeTarget(x.shape, spec, allowZero: allowZero))]
            }
        },
        "Flatten": { n in
            let axisAttr = try n.int("axis", default: 1)
            return { i, _ in
                let x = try i.required(0)
                let axis = axisAttr < 0 ? axisAttr + x.rank : axisAttr
                guard axis >= 0 && axis <= x.rank else { throw OpError("axis \(axisAttr) is out of range for rank \(x.rank)") }
                return [x.reshaped([x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)])]
            }
        },
        "Squeeze": { n in
            let legacy = n.opset < 13
            let attrAxes = legacy ? try n.ints("axes") : nil
            return { i, _ in
                let x = try i.required(0)
                let given = legacy ? attrAxes : i[1].map(intValues)
                var drop = Set<Int>()
                if let given {
                    for a in given {
                        let k = try normalizeAxis(a, rank: x.rank)
                        guard x.shape[k] == 1 else { throw OpError("cannot squeeze axis \(a) of size \(x.shape[k]) in \(x.shape)") }
                        drop.insert(k)
                    }
                } else {
                    drop = Set(x.shape.indices.filter { x.shape[$0] == 1 })
                }
                return [x.reshaped(x.shape.indices.filter { !drop.contains($0) }.map { x.shape[$0] })]
            }
        },
        "Unsqueeze": { n in
            let legacy = n.opset < 13
            let attrAxes = legacy ? try n.ints("axes") : nil
            if legacy && attrAxes == nil { throw n.bad("attribute 'axes' is required") }
            return { i, _ in
                let x = try i.required(0)
                let axes = legacy ? attrAxes! : intValues(try i.required(1, "axes"))
                let r = x.rank + axes.count
                let set = Set(try axes.map { try normalizeAxis($0, rank: r) })
                guard set.count == axes.count else { throw OpError("axes \(axes) repeat an axis") }
                var shape: [Int] = []
                var k = 0
                for d in 0..<r {
                    if set.contains(d) { shape.append(1) } else { shape.append(x.shape[k]); k += 1 }
                }
                return [x.reshaped(shape)]
            }
        },
        "Shape": { n in
            let start = try n.int("start"), end = try n.int("end")
            return { i, c in
                let x = try i.required(0)
                let r = x.rank
                func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
                let lo = start.map(clamp) ?? 0, hi = end.map(clamp) ?? r
                return [try makeInt64(c, lo < hi ? Array(x.shape[lo..<hi]) : [])]
            }
        },
        "Size": { _ in { i, c in [try makeInt64(c, [try i.required(0).count], shape: [])] } },
        "Expand": { _ in { i, c in
            let x = try i.required(0)
            let shape = try broadcastShapes(x.shape, intValues(try i.required(1, "shape")))
            return [try broadcastTo(x, shape, c)]
        } },
    ]

    /// ONNX Reshape's target: 0 copies the input dimension (unless allowzero), -1 is inferred.
    static func reshapeTarget(_ input: [Int], _ spec: [Int], allowZero: Bool) throws -> [Int] {
        var shape = spec
        var inferred: Int?
        for (k, v) in spec.enumerated() {
            if v == 0 && !allowZero {
                guard k < input.count else { throw OpError("shape \(spec): 0 at position \(k) but the input \(input) has no such dimension") }
                shape[k] = input[k]
            } else if v == -1 {
                guard inferred == nil else { throw OpError("shape \(spec) has more than one -1") }
                inferred = k
            } else if v < 0 {
                throw OpError("shape \(spec) has an invalid dimension \(v)")
            }
        }
        let total = input.reduce(1, *)
        if let k = inferred {
            var rest = shape
            rest.remove(at: k)
            guard let known = elementCount(of: rest), known > 0, total % known == 0 else { throw OpError("cannot reshape \(input) to \(spec)") }
            shape[k] = total / known
        }
        guard elementCount(of: shape) == total else { throw OpError("cannot reshape \(input) (\(total) elements) to \(spec)") }
        return shape
    }
}
