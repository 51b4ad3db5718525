import MBCore
import Synchronization

/// Applying a layer's input binarization (MBCore's `ActivationSpec`) to a tensor.
extension ActivationSpec {
    /// Binarizes a Conv input `[N, C, spatial...]`: one Middle-Out mask for the whole tensor
    /// (the paper's "per input tensor"); groups are `n` channels of one pixel.
    public func binarizeConvInput(_ x: UnsafeBufferPointer<Float>, batch: Int, channels: Int, pixels: Int, cache: GroupCache? = nil) -> BinarizedValues {
        let make = {
            MaskGroups.weight(rows: batch, taps: pixels, channels: channels, rowStride: channels * pixels, tapStride: 1,
                              channelStride: pixels, granularity: granularity == .channel ? .group(channels) : granularity)
        }
        guard granularity != .element else { return ActivationBinarizer.binarize(x, bits: bits, fractions: fractions, groups: nil) }
        // Runs only with a cache: finding them is a pass over the ids, worth it once per shape.
        let (groups, runs) = cache?.groupsAndRuns(for: [batch, channels, pixels], make) ?? (make(), nil)
        return ActivationBinarizer.binarize(x, bits: bits, fractions: fractions, groups: groups, runs: runs)
    }

    /// Binarizes a Gemm/MatMul input `[M, K]` as one tensor; groups are `n` consecutive inputs of a row.
    public func binarizeMatrixInput(_ x: UnsafeBufferPointer<Float>, rows: Int, columns: Int, cache: GroupCache? = nil) -> BinarizedValues {
        let make = {
            MaskGroups.weight(rows: rows, taps: 1, channels: columns, rowStride: columns, tapStride: 0, channelStride: 1,
                              granularity: granularity == .channel ? .group(columns) : granularity)
        }
        let groups = granularity == .element ? nil : cache?.groups(for: [rows, columns], make) ?? make()
        return ActivationBinarizer.binarize(x, bits: bits, fractions: fractions, groups: groups)
    }
}

/// Mask groups of a layer's input by shape, computed once (the partition depends only on the
/// shape). Shared by a model's sessions, hence the lock.
public final class GroupCache: Sendable {
    private let table = Mutex<[[Int]: MaskGroups]>([:])
    public init() {}

    private let runTable = Mutex<[[Int]: GroupRuns?]>([:])

    func groups(for key: [Int], _ make: () -> MaskGroups?) -> MaskGroups? {
        if let g = table.withLock({ $0[key] }) { return g }
        guard let g = make() else { return nil }
        table.withLock { $0[key] = g }
        return g
    }

    /// The groups and their runs of consecutive ids (nil when short), both computed once.
    func groupsAndRuns(for key: [Int], _ make: () -> MaskGroups?) -> (MaskGroups?, GroupRuns?) {
        guard let g = groups(for: key, make) else { return (nil, nil) }
        if let r = runTable.withLock({ $0[key] }) { return (g, r) }
        let r = GroupRuns(g)
        runTable.withLock { $0[key] = .some(r) }
        return (g, r)
    }
}

/// A Conv whose weights are bit planes (one matrix per group) and whose input is binarized at
/// run time: AND/XOR-popcount over both operands' planes. Direct convolution over per-pixel
/// activation units (no im2col): a patch is the list of the pixels its taps read.
public final class BinaryConvLayer: @unchecked Sendable {
    public let weights: [BitPlaneMatrix]
    public let activations: ActivationSpec
    let cache = GroupCache()

    public init(weights: [BitPlaneMatrix], activations: ActivationSpec) {
        self.weights = weights
        self.activations = activations
    }

    public func forward(_ g: ConvGeometry, input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                        relu: Bool, threads: Int, scratch: BitPlaneScratch, variant: KernelVariant = .fast) {
        precondition(weights.count == g.groups, "\(weights.count) weight matrices for \(g.groups) groups")
        let inSize = g.inputSize, outSize = g.outputSize
        let xb = activations.binarizeConvInput(UnsafeBufferPointer(start: input, count: g.batch * g.inChannels * inSize),
                                               batch: g.batch, channels: g.inChannels, pixels: inSize, cache: cache)
        let taps = g.kernelSize
        let patches = scratch.buffer(.patches, outSize * taps, as: Int32.self)
        ConvPatches.build(g, into: patches)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let base = (n * g.inChannels + grp * g.inPerGroup) * inSize
                let planes = ActivationPlanes(xb, units: inSize, unitChannels: g.inPerGroup, base: base, unitStride: 1,
                                              channelStride: inSize, scratch: scratch)
                weights[grp].binaryForward(variant, acts: planes, patches: patches, positions: outSize,
                                           bias: bias.map { $0 + grp * g.outPerGroup }, relu: relu,
                                           y: output + (n * g.outChannels + grp * g.outPerGroup) * outSize,
                                           strideRow: outSize, stridePos: 1, threads: threads)
            }
        }
    }

    /// The same layer through float: the input binarized and expanded (x_hat), then the float
    /// convolution with the given (dequantized) weights. What expanded mode runs.
    public func forwardExpanded(_ g: ConvGeometry, input: UnsafePointer<Float>, weights w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                output: UnsafeMutablePointer<Float>, relu: Bool, threads: Int = 1, scratch: KernelScratch) {
        let n = g.batch * g.inChannels * g.inputSize
        let xb = activations.binarizeConvInput(UnsafeBufferPointer(start: input, count: n), batch: g.batch, channels: g.inChannels, pixels: g.inputSize,
                                               cache: cache)
        let xhat = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
        defer { xhat.deallocate() }
        xb.dequantized(into: xhat)
        Conv.forward(.fast, g, input: xhat, weights: w, bias: bias, output: output, activation: relu ? .relu : .none, threads: threads, scratch: scratch)
    }
}
