import CFloatKernels
import Foundation

/// A convolution's weights packed for `Conv`'s `.channels` kernel (`fk_conv_channels_pack`:
/// per group, blocks of 16-48 output channels, each `[k][block]`), made once on first use and
/// kept: the owner (a compiled Conv node with constant weights) creates one empty and passes it
/// on every call. Safe to share between sessions (the packing runs under a lock).
public final class ConvChannelWeights: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: UnsafeMutablePointer<Float>?
    private var key: (weights: UnsafePointer<Float>, outChannels: Int, groups: Int, k: Int)?

    public init() {}
    deinit { storage?.deallocate() }

    /// Bytes held by the packed copy (0 until first used).
    public var residentBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        guard let key else { return 0 }
        return key.groups * fk_conv_channels_packed_floats(key.outChannels / key.groups, key.k) * 4
    }

    /// The packed form of `weights` (`[outC, inC/groups, k...]`) for `g`, packed on the first
    /// call and again only if the weights pointer or shape changes.
    func packed(_ weights: UnsafePointer<Float>, _ g: ConvGeometry) -> UnsafePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        let k = g.inPerGroup * g.kernelSize
        if let key, let storage, key.weights == weights, key.outChannels == g.outChannels, key.groups == g.groups, key.k == k {
            return UnsafePointer(storage)
        }
        storage?.deallocate()
        let packed = Conv.packChannels(weights, g, into: nil)
        storage = packed
        key = (weights, g.outChannels, g.groups, k)
        return UnsafePointer(packed)
    }
}

extension Conv {
    /// Floats of one group's packed weights.
    static func channelsGroupFloats(_ g: ConvGeometry) -> Int {
        fk_conv_channels_packed_floats(g.outPerGroup, g.inPerGroup * g.kernelSize)
    }

    /// Packs every group of `weights` for `.channels` into `into` (or a new 64-byte aligned buffer).
    static func packChannels(_ weights: UnsafePointer<Float>, _ g: ConvGeometry, into: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float> {
        let k = g.inPerGroup * g.kernelSize, per = channelsGroupFloats(g)
        let dst = into ?? UnsafeMutableRawPointer.allocate(byteCount: max(1, g.groups * per) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, g.groups * per))
        for grp in 0..<g.groups {
            fk_conv_channels_pack(weights + grp * g.outPerGroup * k, g.outPerGroup, k, dst + grp * per)
        }
        return dst
    }

    /// Whether `.channels` can run `g`: AVX-512, a 1-D or 2-D convolution (not depthwise).
    public static func channelsAvailable(_ g: ConvGeometry) -> Bool {
        let d = g.dims3
        return fk_has_avx512() != 0 && d.kernel.0 == 1 && d.input.0 == 1 && d.strides.0 == 1 && !(g.inPerGroup == 1 && g.groups > 1)
    }

    /// The convolution vectorised over output channels (`fk_conv_channels`): weights packed
    /// once (`packed`, else into scratch for this call); tiles of 8 output pixels of a row by up
    /// to 48 channels read the input through tap offsets (no im2col), from a zero-padded copy of
    /// each band of rows where the layer pads. Threads split the output rows. Only where
    /// `channelsAvailable(g)`.
    static func channels(
        _ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>, packed: ConvChannelWeights?,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation, threads: Int, scratch: KernelScratch
    ) {
        precondition(channelsAvailable(g), "the channel-vectorised convolution needs AVX-512 and a 1-D/2-D layer")
        let d = g.dims3
        let (_, kh, kw) = d.kernel
        let (_, ih, iw) = d.input
        let (_, oh, ow) = d.output
        let (_, sh, sw) = d.strides
        let (_, dh, dw) = d.dilations
        let (_, ph, pw) = d.pads
        let k = g.inPerGroup * kh * kw
        let per = channelsGroupFloats(g)
        let w = packed?.packed(weights, g) ?? UnsafePointer(packChannels(weights, g, into: scratch.floats(g.groups * per, .packedWeights)))
        let (act, p0, p1) = Elementwise.code(.activation(activation))
        let parts = oh >= 2 && g.outPerGroup * oh * ow * k >= RowGemm.minParallelWork ? min(threads, oh) : 1
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let source = fk_conv2d_source(input: input + (n * g.inChannels + grp * g.inPerGroup) * ih * iw, channels: g.inPerGroup,
                                              ih: ih, iw: iw, ow: ow, kh: kh, kw: kw, sh: sh, sw: sw, dh: dh, dw: dw, ph: ph, pw: pw)
                let y = output + (n * g.outChannels + grp * g.outPerGroup) * oh * ow
                let box = UncheckedSendable((w + grp * per, bias.map { $0 + grp * g.outPerGroup }, y, source))
                Parallel.forEach(parts, threads: parts) { t in
                    let (w, b, y, source) = box.value
                    withUnsafePointer(to: source) {
                        fk_conv_channels($0, oh, w, g.outPerGroup, oh * t / parts, oh * (t + 1) / parts, b, act, p0, p1, y)
                    }
                }
            }
        }
    }
}

extension Conv {
    /// Whether `.automatic` takes `.channels` for `g` (when the caller keeps packed weights).
    /// Measured per layer with `mbbench conv --layers` (thread CPU time, Zen 4; ResNet-50,
    /// SqueezeNet, YOLO11, U-Net, audio and MobileNetV2 layers): the channel kernel ran 3×3
    /// layers with 16 or more input channels at 100-112 GFLOP/s against RowGemm's 82-99, and
    /// 1×1 stride-2 layers at 98-112 against 74-83. It loses where its per-tile transpose is not
    /// amortised over a long reduction while RowGemm's columns are full: 1×1 stride-1 layers with
    /// 16-144 input channels (55-95 against 75-109 on planes of 20×20 and up; 73-76 against 92-98
    /// at 8×8), and first layers on 3 channels. It wins on 1×1 stride-1 layers with 256 or more
    /// input channels on planes under 256 pixels (7×7: 107 against 85, where 49 columns fill
    /// 64-column strips poorly) and on planes of at most 8 pixels (2×2 and 1×1: 40-78 against
    /// 6-28). Blocks of 16 lanes must be at least 80 % used (24 output channels fill 32 lanes:
    /// 66-72 against 77-87 on the audio CNN's 24-channel layers).
    public static func prefersChannels(_ g: ConvGeometry) -> Bool {
        let m = g.outPerGroup, lanes = (m + 15) / 16 * 16
        guard m >= 16, 5 * m >= 4 * lanes else { return false }
        if isPointwise(g) { return g.outputSize <= 8 || (g.outputSize < 256 && g.inPerGroup >= 256) }
        return g.inPerGroup >= 8
    }
}
