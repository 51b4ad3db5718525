/// Shapes of a transposed convolution. Weights are `[inC, outC/groups, k...]`; `output` is the
/// spatial size the caller computed from output_shape / output_padding / pads.
public struct ConvTransposeGeometry: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var groups: Int
    public var input: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padBegin: [Int]
    public var output: [Int]

    public init(batch: Int, inChannels: Int, outChannels: Int, groups: Int = 1, input: [Int], kernel: [Int],
                strides: [Int], dilations: [Int], padBegin: [Int], output: [Int]) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.groups = groups
        self.input = input
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.padBegin = padBegin
        self.output = output
    }

    public var inPerGroup: Int { inChannels / groups }
    public var outPerGroup: Int { outChannels / groups }

    public var dims3: Dims3 {
        Dims3(input: ConvGeometry.spatial3(input, fill: 1), output: ConvGeometry.spatial3(output, fill: 1),
              kernel: ConvGeometry.spatial3(kernel, fill: 1), strides: ConvGeometry.spatial3(strides, fill: 1),
              dilations: ConvGeometry.spatial3(dilations, fill: 1), pads: ConvGeometry.spatial3(padBegin, fill: 0))
    }

    public var problem: String? {
        let r = input.count
        guard (1...3).contains(r) else { return "\(r) spatial dimensions (1 to 3 supported)" }
        guard [kernel, strides, dilations, padBegin, output].allSatisfy({ $0.count == r }) else {
            return "kernel, strides, dilations, pads and output must each have \(r) values"
        }
        guard groups >= 1, inChannels % groups == 0, outChannels % groups == 0 else {
            return "group \(groups) does not divide \(inChannels) input and \(outChannels) output channels"
        }
        guard kernel.allSatisfy({ $0 >= 1 }), strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }),
              output.allSatisfy({ $0 >= 1 }) else { return "kernel, strides, dilations and output must be >= 1" }
        return nil
    }

    public var description: String {
        "N=\(batch) C=\(inChannels)->\(outChannels) g=\(groups) in=\(input) k=\(kernel) s=\(strides) d=\(dilations) padBegin=\(padBegin) out=\(output)"
    }
}

public enum ConvTranspose {
    /// Fast variant: 1-D/2-D on AVX-512 CPUs, one small convolution per output phase through
    /// `RowGemm` (`ConvTranspose+Phases.swift`); otherwise, per group, `col = Wᵀ · X` through
    /// GEMM, then col2im adds each column into the output (parallel over output channels, so
    /// no two threads write the same element). `implementation` forces one (tests, benchmarks).
    public static func forward(
        _ variant: KernelVariant = .fast, _ g: ConvTransposeGeometry,
        input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, threads: Int = 1, scratch: KernelScratch? = nil,
        implementation: Implementation = .automatic
    ) {
        if variant == .reference {
            reference(g, input: input, weights: weights, bias: bias, output: output)
            return
        }
        let phased = implementation == .phases ? canRunPhases(g) : implementation == .automatic && suitsPhases(g)
        if phased {
            let scratch = scratch ?? KernelScratch()
            withExtendedLifetime(scratch) {
                phases(g, input: input, weights: weights, bias: bias, output: output, threads: threads, scratch: scratch)
            }
            return
        }
        let d = g.dims3
        let inSize = d.inputSize, outSize = d.outputSize, kSize = d.kernelSize
        let rows = g.outPerGroup * kSize
        let scratch = scratch ?? KernelScratch()
        defer { withExtendedLifetime(scratch) {} }
        let col = scratch.floats(rows * inSize)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let x = input + (n * g.inChannels + grp * g.inPerGroup) * inSize
                let w = weights + grp * g.inPerGroup * rows
                Gemm.parallel(threads: threads, transA: true, transB: false, m: rows, n: inSize, k: g.inPerGroup,
                              alpha: 1, a: w, lda: rows, b: x, ldb: inSize, beta: 0, c: col, ldc: inSize)
                let y = UncheckedSendable(output + (n * g.outChannels + grp * g.outPerGroup) * outSize)
                let colBox = UncheckedSendable(UnsafePointer(col))
                Parallel.forEach(g.outPerGroup, threads: threads) { oc in
                    let dst = y.value + oc * outSize
                    dst.update(repeating: bias?[grp * g.outPerGroup + oc] ?? 0, count: outSize)
                    col2im(d, col: colBox.value + oc * kSize * inSize, plane: dst)
                }
            }
        }
    }

    /// `.automatic`: phases where they suit the geometry, else `.columns` (GEMM + col2im);
    /// `.phases` forces the phase split wherever it can run (1-D/2-D, AVX-512).
    public enum Implementation: Sendable, Equatable {
        case automatic
        case columns
        case phases
    }

    /// Adds the `kSize` rows of one output channel's columns into its output plane.
    static func col2im(_ d: Dims3, col: UnsafePointer<Float>, plane: UnsafeMutablePointer<Float>) {
        let (kd, kh, kw) = d.kernel
        let (id, ih, iw) = d.input
        let (od, oh, ow) = d.output
        var src = col
        for z in 0..<kd { for y in 0..<kh { for x in 0..<kw {
            let wOff = x * d.dilations.2 - d.pads.2
            // input positions ix whose output ix * sw + wOff lies in 0..<ow
            let r = validRange(outCount: iw, inCount: ow, stride: d.strides.2, offset: wOff)
            for iz in 0..<id {
                let oz = iz * d.strides.0 - d.pads.0 + z * d.dilations.0
                for iy in 0..<ih {
                    let oy = iy * d.strides.1 - d.pads.1 + y * d.dilations.1
                    let s = src + (iz * ih + iy) * iw
                    guard oz >= 0, oz < od, oy >= 0, oy < oh else { continue }
                    let row = plane + (oz * oh + oy) * ow
                    for ix in r { row[ix * d.strides.2 + wOff] += s[ix] }
                }
            }
            src += id * ih * iw
        } } }
    }
}
