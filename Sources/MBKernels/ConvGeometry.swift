/// Shapes of one convolution (N-D with 1 to 3 spatial dimensions, NC + spatial layout).
/// Kernels see every geometry as 3-D: `spatial3(...)` pads lower ranks with leading 1s
/// (size 1, stride 1, dilation 1, no padding), so one code path serves Conv1d/2d/3d.
public struct ConvGeometry: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var groups: Int
    public var input: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padBegin: [Int]
    public var padEnd: [Int]

    public init(batch: Int, inChannels: Int, outChannels: Int, groups: Int = 1, input: [Int], kernel: [Int],
                strides: [Int]? = nil, dilations: [Int]? = nil, padBegin: [Int]? = nil, padEnd: [Int]? = nil) {
        let r = input.count
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.groups = groups
        self.input = input
        self.kernel = kernel
        self.strides = strides ?? Array(repeating: 1, count: r)
        self.dilations = dilations ?? Array(repeating: 1, count: r)
        self.padBegin = padBegin ?? Array(repeating: 0, count: r)
        self.padEnd = padEnd ?? Array(repeating: 0, count: r)
    }

    public var rank: Int { input.count }

    /// Output spatial size: floor((in + pads - dilated kernel) / stride) + 1.
    public var output: [Int] {
        (0..<rank).map { i in
            let span = (kernel[i] - 1) * dilations[i] + 1
            return (input[i] + padBegin[i] + padEnd[i] - span) / strides[i] + 1
        }
    }

    /// Whether the numbers describe a convolution the kernels can run.
    public var problem: String? {
        guard (1...3).contains(rank) else { return "\(rank) spatial dimensions (1 to 3 supported)" }
        guard [kernel, strides, dilations, padBegin, padEnd].allSatisfy({ $0.count == rank }) else {
            return "kernel, strides, dilations and pads must each have \(rank) values"
        }
        guard groups >= 1, inChannels % groups == 0, outChannels % groups == 0 else {
            return "group \(groups) does not divide \(inChannels) input and \(outChannels) output channels"
        }
        guard kernel.allSatisfy({ $0 >= 1 }), strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }),
              padBegin.allSatisfy({ $0 >= 0 }), padEnd.allSatisfy({ $0 >= 0 }) else {
            return "kernel, strides and dilations must be >= 1 and pads >= 0"
        }
        guard output.allSatisfy({ $0 >= 1 }) else { return "the output would be empty (\(output))" }
        return nil
    }

    public var inPerGroup: Int { inChannels / groups }
    public var outPerGroup: Int { outChannels / groups }
    public var inputSize: Int { input.reduce(1, *) }
    public var outputSize: Int { output.reduce(1, *) }
    public var kernelSize: Int { kernel.reduce(1, *) }
    /// Multiply-adds of the whole convolution (every batch item and group).
    public var multiplyAdds: Int { batch * outChannels * outputSize * inPerGroup * kernelSize }

    /// A per-dimension list padded to 3 entries with `fill` in front.
    @inlinable
    public static func spatial3(_ v: [Int], fill: Int) -> (Int, Int, Int) {
        switch v.count {
        case 1: return (fill, fill, v[0])
        case 2: return (fill, v[0], v[1])
        default: return (v[0], v[1], v[2])
        }
    }

    /// The geometry as 3 spatial dimensions (d, h, w).
    public var dims3: Dims3 {
        Dims3(input: Self.spatial3(input, fill: 1), output: Self.spatial3(output, fill: 1),
              kernel: Self.spatial3(kernel, fill: 1), strides: Self.spatial3(strides, fill: 1),
              dilations: Self.spatial3(dilations, fill: 1), pads: Self.spatial3(padBegin, fill: 0))
    }

    public var description: String {
        "N=\(batch) C=\(inChannels)->\(outChannels) g=\(groups) in=\(input) k=\(kernel) s=\(strides) d=\(dilations) pads=\(padBegin)+\(padEnd)"
    }
}

/// A convolution-like window over 3 spatial dimensions.
public struct Dims3: Sendable {
    public var input: (Int, Int, Int)
    public var output: (Int, Int, Int)
    public var kernel: (Int, Int, Int)
    public var strides: (Int, Int, Int)
    public var dilations: (Int, Int, Int)
    /// Padding before each dimension.
    public var pads: (Int, Int, Int)

    public var inputSize: Int { input.0 * input.1 * input.2 }
    public var outputSize: Int { output.0 * output.1 * output.2 }
    public var kernelSize: Int { kernel.0 * kernel.1 * kernel.2 }
}

/// The range of output positions `o` in `0..<outCount` whose input `o * stride + offset` lies in
/// `0..<inCount`.
@inline(__always)
func validRange(outCount: Int, inCount: Int, stride: Int, offset: Int) -> Range<Int> {
    // o * stride + offset >= 0  ⇔  o >= ceil(-offset / stride)
    var lo = 0
    if offset < 0 { lo = (-offset + stride - 1) / stride }
    // o * stride + offset <= inCount - 1  ⇔  o <= floor((inCount - 1 - offset) / stride)
    let top = inCount - 1 - offset
    let hi = top < 0 ? 0 : min(outCount, top / stride + 1)
    return lo < hi ? lo..<hi : 0..<0
}
