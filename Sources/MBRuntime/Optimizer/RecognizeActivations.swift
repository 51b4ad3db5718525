import MBCore

/// Activations exporters spell out with several nodes become the one operator they compute, so
/// a kernel runs them in one pass (and a Conv can absorb them):
/// - SiLU `x * Sigmoid(x)` becomes Swish (alpha 1);
/// - HardSwish `x * Clip(x + 3, 0, 6) / 6` (also `Mul(.., 1/6)`), `x * HardSigmoid(x)` with
///   alpha 1/6 and beta 0.5, and `x * (Relu6(x + 3) / 6)` become HardSwish;
/// - `Clip(x + 3, 0, 6) / 6` on its own becomes HardSigmoid (alpha 1/6, beta 0.5).
/// The intermediate values must have no other reader (they are removed by the dead-node pass);
/// constants must be scalars of rank 0 or 1, so broadcasting cannot have changed the shape.
enum RecognizeActivations {
    static func run(_ g: inout OptimizerGraph) {
        let readers = g.readers()
        let producers = g.producers()
        let m = Matcher(readers: readers, producers: producers)
        for k in g.nodes.indices {
            guard let n = g.nodes[k], n.outputs.count == 1 else { continue }
            var replacement: IRNode?
            if let x = m.siluInput(n, &g) {
                replacement = IRNode(name: n.name, opType: "Swish", inputs: [x], outputs: n.outputs, attributes: [IRAttribute(name: "alpha", value: .float(1))])
            } else if let x = m.hardSwishInput(n, &g) {
                replacement = IRNode(name: n.name, opType: "HardSwish", inputs: [x], outputs: n.outputs)
            } else if !n.isOp("HardSigmoid"), let x = m.hardSigmoidInput(n, &g) {
                replacement = IRNode(name: n.name, opType: "HardSigmoid", inputs: [x], outputs: n.outputs,
                                     attributes: [IRAttribute(name: "alpha", value: .float(1.0 / 6)), IRAttribute(name: "beta", value: .float(0.5))])
            }
            if let replacement {
                g.nodes[k] = replacement
                g.rewrites += 1
            }
        }
    }

    struct Matcher {
        let readers: [String: Int]
        let producerOf: [String: Int]

        init(readers: [String: Int], producers: [String: Int]) {
            self.readers = readers
            self.producerOf = producers
        }

        /// The node computing `v` when the pattern may consume it (one reader, not visible outside).
        func def(_ v: String, _ g: OptimizerGraph) -> IRNode? {
            guard readers[v] == 1, g.isInternal(v), let p = producerOf[v], let n = g.nodes[p], n.outputs.count == 1 else { return nil }
            return n
        }

        static func near(_ a: Float?, _ b: Float) -> Bool { a.map { abs($0 - b) <= 1e-6 * max(1, abs(b)) } ?? false }

        /// x for `v = x * Sigmoid(x)` (either order).
        func siluInput(_ n: IRNode, _ g: inout OptimizerGraph) -> String? {
            guard n.isOp("Mul"), n.inputs.count == 2 else { return nil }
            for (a, b) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
                if let s = def(b, g), s.isOp("Sigmoid"), s.inputs.first == a, a != b { return a }
            }
            return nil
        }

        /// The other operand of a binary `n` whose one operand is the scalar constant `value`.
        func operand(of n: IRNode, withScalar value: Float, commutative: Bool, _ g: inout OptimizerGraph) -> String? {
            guard n.inputs.count == 2 else { return nil }
            if Self.near(g.scalar(n.inputs[1]), value) { return n.inputs[0] }
            if commutative, Self.near(g.scalar(n.inputs[0]), value) { return n.inputs[1] }
            return nil
        }

        /// x for `v = Clip(x + 3, 0, 6)` (Clip's bounds as inputs or, before opset 11, attributes).
        func relu6Plus3(_ v: String, _ g: inout OptimizerGraph) -> String? {
            guard let c = def(v, g), c.isOp("Clip"), let a = c.inputs.first else { return nil }
            let lo: Float?, hi: Float?
            if c.inputs.count > 1 {
                lo = c.inputs[1].isEmpty ? nil : g.scalar(c.inputs[1])
                hi = c.inputs.count > 2 && !c.inputs[2].isEmpty ? g.scalar(c.inputs[2]) : nil
            } else {
                lo = g.float(c, "min", -.infinity)
                hi = g.float(c, "max", .infinity)
            }
            guard Self.near(lo, 0), Self.near(hi, 6), let add = def(a, g), add.isOp("Add") else { return nil }
            return operand(of: add, withScalar: 3, commutative: true, &g)
        }

        /// x for `v = clamp(x / 6 + 0.5, 0, 1)`: HardSigmoid(1/6, 0.5), or Clip(x + 3, 0, 6) / 6 (or * 1/6).
        func hardSigmoidInput(_ n: IRNode, _ g: inout OptimizerGraph) -> String? {
            if n.isOp("HardSigmoid") {
                guard Self.near(g.float(n, "alpha", 0.2), 1.0 / 6), Self.near(g.float(n, "beta", 0.5), 0.5) else { return nil }
                return n.inputs.first
            }
            let r: String?
            if n.isOp("Div") { r = operand(of: n, withScalar: 6, commutative: false, &g) } else if n.isOp("Mul") {
                r = operand(of: n, withScalar: 1.0 / 6, commutative: true, &g)
            } else { r = nil }
            return r.flatMap { relu6Plus3($0, &g) }
        }

        /// x for a spelled-out HardSwish rooted at `n`.
        func hardSwishInput(_ n: IRNode, _ g: inout OptimizerGraph) -> String? {
            guard n.inputs.count == 2 else { return nil }
            if n.isOp("Mul") {
                // x * h(x) with h a hard sigmoid.
                for (a, b) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
                    if let h = def(b, g), let x = hardSigmoidInput(h, &g), x == a { return a }
                }
            }
            // (x * Clip(x + 3, 0, 6)) / 6, or * (1/6).
            let m: String?
            if n.isOp("Div") { m = operand(of: n, withScalar: 6, commutative: false, &g) } else if n.isOp("Mul") {
                m = operand(of: n, withScalar: 1.0 / 6, commutative: true, &g)
            } else { m = nil }
            guard let m, let mul = def(m, g), mul.isOp("Mul"), mul.inputs.count == 2 else { return nil }
            for (a, b) in [(mul.inputs[0], mul.inputs[1]), (mul.inputs[1], mul.inputs[0])] {
                if let x = relu6Plus3(b, &g), x == a { return a }
            }
            return nil
        }
    }
}
