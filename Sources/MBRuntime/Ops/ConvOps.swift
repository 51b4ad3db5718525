import MBCore
import MBKernels

/// Conv and ConvTranspose: attributes read once; pads resolved per run from the input shape
/// (auto_pad SAME_* depends on it); the math runs in MBKernels.
enum ConvOps {
    struct Attributes {
        var autoPad: String
        var dilations: [Int]?
        var group: Int
        var kernelShape: [Int]?
        var pads: [Int]?
        var strides: [Int]?

        /// Largest kernel size, stride, dilation, pad or group accepted: far beyond any real
        /// model, small enough that window arithmetic on bounded dimensions cannot overflow.
        static let maxWindow = 1 << 24
        /// Largest dimension of a windowed operator's input or weights (an empty tensor may
        /// declare any size along its other axes).
        static let maxDimension = 1 << 31

        init(_ n: NodeContext) throws {
            autoPad = try n.string("auto_pad", default: "NOTSET")
            guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else { throw n.bad("auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID") }
            dilations = try n.ints("dilations")
            group = try n.int("group", default: 1)
            guard group >= 1, group <= Self.maxWindow else { throw n.bad("group must be in 1...\(Self.maxWindow), got \(group)") }
            kernelShape = try n.ints("kernel_shape")
            pads = try n.ints("pads")
            strides = try n.ints("strides")
            if let p = pads, p.contains(where: { $0 < 0 }) { throw n.bad("pads must be >= 0, got \(p)") }
            for (name, values, low) in [("kernel_shape", kernelShape, 1), ("strides", strides, 1), ("dilations", dilations, 1), ("pads", pads, 0)] {
                if let values, let bad = values.first(where: { $0 < low || $0 > Self.maxWindow }) {
                    throw n.bad("\(name) \(values): \(bad) is outside \(low)...\(Self.maxWindow)")
                }
            }
        }

        /// Refuses tensors with a dimension over `maxDimension` (only empty ones can have one).
        static func checkDimensions(_ tensors: (String, MBTensor)...) throws {
            for (what, t) in tensors {
                // Partial products of the non-zero dimensions must fit too (an empty tensor's do not have to).
                let nonZero = t.shape.filter { $0 != 0 }
                guard !t.shape.contains(where: { $0 > maxDimension }), let n = elementCount(of: nonZero), n <= 1 << 62 else {
                    throw OpError("\(what) \(t.shape) has a dimension over \(maxDimension) or too many elements", kind: .limitExceeded)
                }
            }
        }

        func list(_ v: [Int]?, _ rank: Int, _ d: Int, _ what: String) throws -> [Int] {
            guard let v else { return Array(repeating: d, count: rank) }
            guard v.count == rank else { throw OpError("\(what) has \(v.count) values for \(rank) spatial dimensions") }
            return v
        }

        /// The convolution of input `x` with weights of shape `w`, checked.
        func geometry(x: MBTensor, w: [Int], bias: MBTensor?) throws -> ConvGeometry {
            guard x.rank >= 3, w.count == x.rank else { throw OpError("X \(x.shape) and W \(w) must have the same rank >= 3") }
            let r = x.rank - 2
            let spatial = Array(x.shape[2...])
            let kernel = try list(kernelShape, r, 0, "kernel_shape")
            guard kernel == Array(w[2...]) || kernelShape == nil else { throw OpError("kernel_shape \(kernel) does not match W \(w)") }
            let k = Array(w[2...])
            let strides = try list(self.strides, r, 1, "strides"), dil = try list(dilations, r, 1, "dilations")
            let (pb, pe) = try resolvePads(input: spatial, kernel: k, strides: strides, dilations: dil)
            guard x.shape[1] == w[1] * group else {
                throw OpError("X has \(x.shape[1]) channels but W \(w) with group \(group) expects \(w[1] * group)")
            }
            if let bias, bias.count != w[0] { throw OpError("B has \(bias.count) values for \(w[0]) output channels") }
            let g = ConvGeometry(batch: x.shape[0], inChannels: x.shape[1], outChannels: w[0], groups: group,
                                 input: spatial, kernel: k, strides: strides, dilations: dil, padBegin: pb, padEnd: pe)
            if let problem = g.problem { throw OpError(problem) }
            return g
        }

        /// This node's convolution with weights of shape `w` on a made-up input of batch 1, for
        /// auto mode's load-time trial of weight forms: the spatial size gives about
        /// `multiplyAdds` multiply-adds, 256 to 4096 output positions. nil when the attributes
        /// do not give a valid geometry.
        func trialGeometry(w: [Int], multiplyAdds: Int = 1 << 23) -> ConvGeometry? {
            guard w.count >= 3 else { return nil }
            let r = w.count - 2, k = Array(w[2...])
            let perPosition = max(1, w[0] * w[1] * k.reduce(1, *))
            let positions = min(4096, max(256, multiplyAdds / perPosition))
            let side = r == 1 ? positions : Int(Double(positions).squareRoot().rounded(.up))
            guard let strides = try? list(self.strides, r, 1, "strides"), let dil = try? list(dilations, r, 1, "dilations") else { return nil }
            let input = (0..<r).map { i in side * strides[i] + (k[i] - 1) * dil[i] }
            guard let (pb, pe) = try? resolvePads(input: input, kernel: k, strides: strides, dilations: dil) else { return nil }
            let g = ConvGeometry(batch: 1, inChannels: w[1] * group, outChannels: w[0], groups: group, input: input, kernel: k,
                                 strides: strides, dilations: dil, padBegin: pb, padEnd: pe)
            return g.problem == nil ? g : nil
        }

        /// (begin, end) pads for a window sweep over `input` (Conv and pooling).
        func resolvePads(input: [Int], kernel: [Int], strides: [Int], dilations: [Int]) throws -> ([Int], [Int]) {
            let r = input.count
            switch autoPad {
            case "VALID": return (Array(repeating: 0, count: r), Array(repeating: 0, count: r))
            case "SAME_UPPER", "SAME_LOWER":
                var b: [Int] = [], e: [Int] = []
                for i in 0..<r {
                    let out = (input[i] + strides[i] - 1) / strides[i]
                    let total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i])
                    let small = total / 2
                    b.append(autoPad == "SAME_UPPER" ? small : total - small)
                    e.append(autoPad == "SAME_UPPER" ? total - small : small)
                }
                return (b, e)
            default:
                let p = try list(pads, 2 * r, 0, "pads")
                return (Array(p[0..<r]), Array(p[r...]))
            }
        }
    }

    static let table: [String: OpTable.Compile] = [
        "Conv": { n in
            let a = try Attributes(n)
            // A fused activation: Relu runs in the kernel epilogue; with a residual, or any other
            // activation, the kernel writes the plain sum and `FloatElementwise.finish` applies
            // the rest in one threaded pass.
            let plan = n.plan
            let fusedActivation = plan?.activation ?? .none
            let residualIndex = plan?.residual == true ? n.inputCount - 1 : nil
            let activation: Conv.Activation = residualIndex == nil ? fusedActivation.kernelEpilogue : .none
            let after: Conv.Activation = activation == fusedActivation ? .none : fusedActivation
            let binarized = try BinarizedInput.spec(n)
            if let w = n.constantInput(1), w.elementType != .float { throw n.unsupported("weights of type \(w.elementType.name) (float only)") }
            if let packed = n.packedInput(1), let weights = try? PackedConvWeights(packed, groups: a.group, activations: binarized, n, input: 1,
                                                                                              trial: a.trialGeometry(w: packed.shape)) {
                if weights.choice == nil { n.claimPacked(1, bytes: weights.residentBytes) }
                let shape = weights.shape
                return { i, c in
                    let x = try i.float(0, "X")
                    let bias = try i[2].map { _ in try i.float(2, "B") }
                    try Attributes.checkDimensions(("X", x))
                    let g = try a.geometry(x: x, w: shape, bias: bias)
                    let residual = try residualIndex.map { try i.float($0, "residual") }
                    if let residual, let y = try weights.forwardAddingResidual(g, x: x, bias: bias, residual: residual, activation: fusedActivation, c) {
                        return [y]
                    }
                    let y = try weights.forward(g, x: x, bias: bias, activation: activation, c)
                    return [try FloatElementwise.finish(y, residual: residual, after, c)]
                }
            }
            // Constant weights are packed for the channel-vectorised kernel on the first run that
            // takes it, and kept.
            let channelWeights = n.constantInput(1) != nil ? ConvChannelWeights() : nil
            return { i, c in
                var x = try i.float(0, "X")
                let w = try i.float(1, "W")
                let bias = try i[2].map { b in try i.float(2, "B") }
                try Attributes.checkDimensions(("X", x), ("W", w))
                let g = try a.geometry(x: x, w: w.shape, bias: bias)
                if let binarized { x = try BinarizedInput.expand(x, binarized, conv: true, c) }
                let out = try c.alloc(.float, [g.batch, g.outChannels] + g.output)
                Conv.forward(c.variant, g, input: x.pointer(Float.self), weights: w.pointer(Float.self), bias: bias?.pointer(Float.self),
                             output: out.mutable(Float.self), activation: activation, threads: c.threads, scratch: c.scratch,
                             packedWeights: channelWeights)
                return [try FloatElementwise.finish(out, residual: try residualIndex.map { try i.float($0, "residual") }, after, c)]
            }
        },
        "ConvTranspose": { n in
            let a = try Attributes(n)
            let outputPadding = try n.ints("output_padding")
            let outputShape = try n.ints("output_shape")
            if let op = outputPadding, let bad = op.first(where: { $0 < 0 || $0 > Attributes.maxWindow }) {
                throw n.bad("output_padding \(op): \(bad) is outside 0...\(Attributes.maxWindow)")
            }
            if let os = outputShape, let bad = os.first(where: { $0 < 0 || $0 > Attributes.maxDimension }) {
                throw n.bad("output_shape \(os): \(bad) is outside 0...\(Attributes.maxDimension)")
            }
            let after = n.plan?.activation ?? .none
            // A binarized weight small enough to decode whole into the session's tile buffer runs
            // from its compact form (packed mode); larger ones are expanded.
            let packedChoice = n.packedInput(1).flatMap { p in
                p.count <= CompactPlanes.tileFloats ? try? n.weightChoice(p, kind: .conv, input: 1) : nil
            }
            let packedShape = n.packedInput(1)?.shape
            return { i, c in
                let x = try i.float(0, "X")
                let w: MBTensor
                if let choice = packedChoice {
                    if let e = choice.expanded {
                        w = e
                    } else {
                        let compact = choice.compact!
                        let t = try c.alloc(.float, packedShape!)
                        compact.decode(c.variant, rows: 0..<compact.rows, into: t.mutable(Float.self), ldo: compact.columns)
                        w = t
                    }
                } else {
                    w = try i.float(1, "W")
                }
                let bias = try i[2].map { _ in try i.float(2, "B") }
                try Attributes.checkDimensions(("X", x), ("W", w))
                guard x.rank >= 3, w.rank == x.rank else { throw OpError("X \(x.shape) and W \(w.shape) must have the same rank >= 3") }
                let r = x.rank - 2
                let spatial = Array(x.shape[2...]), k = Array(w.shape[2...])
                let strides = try a.list(a.strides, r, 1, "strides"), dil = try a.list(a.dilations, r, 1, "dilations")
                let op = try a.list(outputPadding, r, 0, "output_padding")
                guard x.shape[1] == w.shape[0] else { throw OpError("X has \(x.shape[1]) channels but W \(w.shape) expects \(w.shape[0])") }
                let outC = w.shape[1] * a.group
                var pb: [Int] = [], out: [Int] = []
                var natural: [Int] = []
                for d in 0..<r { natural.append(strides[d] * (spatial[d] - 1) + op[d] + (k[d] - 1) * dil[d] + 1) }
                if let os = outputShape, os.count < r { throw OpError("output_shape \(os) has fewer than \(r) spatial sizes") }
                if a.autoPad.hasPrefix("SAME") {
                    // The total padding that gives output_shape (default input * stride), split with
                    // floor division as the ONNX reference does: the odd one at the end for SAME_UPPER.
                    let target = outputShape.map { Array($0.suffix(r)) } ?? (0..<r).map { spatial[$0] * strides[$0] }
                    for d in 0..<r {
                        let total = natural[d] - target[d]
                        let half = Int((Double(total) / 2).rounded(.down))
                        pb.append(a.autoPad == "SAME_UPPER" ? half : total - half)
                        out.append(target[d])
                    }
                } else {
                    let p = a.autoPad == "VALID" ? Array(repeating: 0, count: 2 * r) : try a.list(a.pads, 2 * r, 0, "pads")
                    pb = Array(p[0..<r])
                    // output_shape without auto_pad fixes the size only: the result starts at pads'
                    // begin and is cut (or zero-extended) at the end.
                    out = outputShape.map { Array($0.suffix(r)) } ?? (0..<r).map { natural[$0] - p[$0] - p[$0 + r] }
                }
                if let bias, bias.count != outC { throw OpError("B has \(bias.count) values for \(outC) output channels") }
                let g = ConvTransposeGeometry(batch: x.shape[0], inChannels: x.shape[1], outChannels: outC, groups: a.group,
                                              input: spatial, kernel: k, strides: strides, dilations: dil, padBegin: pb, output: out)
                if let problem = g.problem { throw OpError(problem) }
                let y = try c.alloc(.float, [g.batch, outC] + out)
                ConvTranspose.forward(c.variant, g, input: x.pointer(Float.self), weights: w.pointer(Float.self), bias: bias?.pointer(Float.self),
                                      output: y.mutable(Float.self), threads: c.threads, scratch: c.scratch)
                return [try FloatElementwise.finish(y, residual: nil, after, c)]
            }
        },
    ]
}
