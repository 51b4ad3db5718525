import MBCore
import MBFormat
import MBKernels

/// Binarized layers in the runtime: layers whose input is binarized at inference time (node attributes
/// `mb.activations.*`, written by the converter from a policy's `activations:`), and layers
/// whose binarized weights run from bit planes (packed mode).
///
/// Binarized inputs mean the same thing in both modes: the input tensor gets a Middle-Out mask
/// and residual levels (one scale per level for the whole tensor). Expanded mode then runs the
/// float kernels on x_hat; packed mode runs the AND/XOR-popcount kernel on both operands' planes.
enum BinarizedInput {
    /// The node's input binarization (MBFormat's `ActivationAttributes`), or nil when it has none.
    static func spec(_ n: NodeContext) throws -> ActivationSpec? {
        do {
            return try ActivationAttributes.decode(n.node.attributes)
        } catch {
            throw error.kind == .unsupported ? n.unsupported(error.message) : n.bad(error.message)
        }
    }

    /// x_hat for the float kernels: a Conv input (`conv`) or a matrix input as one tensor.
    static func expand(_ x: MBTensor, _ spec: ActivationSpec, conv: Bool, _ c: ExecutionContext) throws -> MBTensor {
        let values = x.buffer(Float.self)
        let xb: BinarizedValues
        if conv {
            xb = spec.binarizeConvInput(values, batch: x.shape[0], channels: x.shape[1], pixels: x.shape[2...].reduce(1, *))
        } else {
            let k = x.shape.last ?? 1
            xb = spec.binarizeMatrixInput(values, rows: x.count / max(k, 1), columns: k)
        }
        let y = try c.alloc(.float, x.shape)
        xb.dequantized(into: y.mutable(Float.self))
        return y
    }
}

/// Bit-plane weights of one Gemm/MatMul: `y[m, n] = sum_k A[m, k] W[n, k]` (W from the planes).
final class PackedMatrix: @unchecked Sendable {
    let matrix: BitPlaneMatrix
    let activations: ActivationSpec?
    let cache = GroupCache()

    init(_ packed: PackedTensor, transposed: Bool, activations: ActivationSpec?) throws {
        matrix = try BitPlaneMatrix(packed: packed, kind: .matrix(transposed: transposed))
        self.activations = activations
    }

    var k: Int { matrix.tapChannels }
    var n: Int { matrix.rows }

    /// Rows of `a` ([m, k], contiguous) times the weights into `y` ([m, n]).
    func multiply(a: UnsafePointer<Float>, m: Int, y: UnsafeMutablePointer<Float>, _ c: ExecutionContext) {
        if let spec = activations {
            let xb = spec.binarizeMatrixInput(UnsafeBufferPointer(start: a, count: m * k), rows: m, columns: k, cache: cache)
            let planes = ActivationPlanes(xb, units: m, unitChannels: k, base: 0, unitStride: k, channelStride: 1, scratch: c.bitScratch)
            let patches = c.bitScratch.buffer(.patches, m, as: Int32.self)
            for p in 0..<m { patches[p] = Int32(p) }
            matrix.binaryForward(c.variant, acts: planes, patches: patches, positions: m, bias: nil, relu: false,
                                 y: y, strideRow: 1, stridePos: n, threads: c.threads)
        } else {
            for r in 0..<m {
                matrix.gemv(c.variant, x: a + r * k, bias: nil, y: y + r * n, threads: c.threads, scratch: c.bitScratch)
            }
        }
    }
}

/// Bit-plane weights of one Conv (a matrix per group).
final class PackedConvWeights: @unchecked Sendable {
    let shape: [Int]
    let groups: Int
    let layer: BinaryConvLayer?
    let matrices: [BitPlaneMatrix]

    init(_ packed: PackedTensor, groups: Int, activations: ActivationSpec?) throws {
        shape = packed.shape
        self.groups = groups
        let matrices = try (0..<groups).map { try BitPlaneMatrix(packed: packed, kind: .conv, group: $0, groups: groups) }
        self.matrices = matrices
        layer = activations.map { BinaryConvLayer(weights: matrices, activations: $0) }
    }

    var residentBytes: Int { matrices.reduce(0) { $0 + $1.residentBytes } }

    func forward(_ g: ConvGeometry, x: MBTensor, bias: MBTensor?, relu: Bool, _ c: ExecutionContext) throws -> MBTensor {
        let out = try c.alloc(.float, [g.batch, g.outChannels] + g.output)
        if let layer {
            layer.forward(g, input: x.pointer(Float.self), bias: bias?.pointer(Float.self), output: out.mutable(Float.self),
                          relu: relu, threads: c.threads, scratch: c.bitScratch, variant: c.variant)
            return out
        }
        // Float activations: the weights decoded into scratch for this call (never kept), then
        // the float convolution.
        let count = shape.reduce(1, *)
        let w = c.bitScratch.buffer(.decodedWeights, count, as: Float.self)
        let perGroup = count / groups
        // Blocks of 8 rows write disjoint rows: the threads share the decode.
        let wBox = UncheckedSendable(w)
        for (grp, m) in matrices.enumerated() {
            let parts = min(m.blocks, 4 * c.threads)
            Parallel.forEach(parts, threads: perGroup > 1 << 14 ? c.threads : 1) { t in
                m.decode(into: wBox.value, offset: grp * perGroup, rowStride: m.taps * m.tapChannels, tapStride: 1, channelStride: m.taps,
                         rowBlocks: (m.blocks * t / parts)..<(m.blocks * (t + 1) / parts))
            }
        }
        Conv.forward(c.variant, g, input: x.pointer(Float.self), weights: w, bias: bias?.pointer(Float.self),
                     output: out.mutable(Float.self), activation: relu ? .relu : .none, threads: c.threads, scratch: c.scratch)
        return out
    }
}
