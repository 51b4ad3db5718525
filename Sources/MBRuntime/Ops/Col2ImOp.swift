import MBCore

/// Col2Im (opset 18): the inverse of im2col. Input [N, C × ∏block_shape, L] holds one column per
/// sliding-block position; each value is added into the image ([N, C, image_shape...]) at its
/// block position (stride, dilation, pads as in Conv), overlapping blocks summing.
enum Col2ImOp {
    static let table: [String: OpTable.Compile] = [
        "Col2Im": { n in
            let dilationsAttr = try n.ints("dilations"), padsAttr = try n.ints("pads"), stridesAttr = try n.ints("strides")
            return { i, c in
                let x = try i.float(0, "input")
                let image = try i.required(1, "image_shape").int64s.map(Int.init), block = try i.required(2, "block_shape").int64s.map(Int.init)
                let r = image.count
                guard r >= 1, block.count == r, x.rank == 3, image.allSatisfy({ $0 >= 1 }), block.allSatisfy({ $0 >= 1 }) else {
                    throw OpError("input \(x.shape) must be [N, C × ∏block, L] with image_shape \(image) and block_shape \(block) of one length")
                }
                let dil = dilationsAttr ?? Array(repeating: 1, count: r), steps = stridesAttr ?? Array(repeating: 1, count: r)
                let pads = padsAttr ?? Array(repeating: 0, count: 2 * r)
                guard dil.count == r, steps.count == r, pads.count == 2 * r else { throw OpError("dilations, strides and pads must have \(r), \(r) and \(2 * r) values") }
                var blocks: [Int] = []
                for d in 0..<r {
                    let span: Int = dil[d] * (block[d] - 1) + 1
                    blocks.append((image[d] + pads[d] + pads[d + r] - span) / steps[d] + 1)
                }
                let kernel = block.reduce(1, *), positions = blocks.reduce(1, *), pixels = image.reduce(1, *)
                guard blocks.allSatisfy({ $0 >= 1 }), x.shape[1] % kernel == 0, x.shape[2] == positions else {
                    throw OpError("input \(x.shape) does not fit \(positions) block positions of \(kernel) values")
                }
                let (batch, channels) = (x.shape[0], x.shape[1] / kernel)
                let y = try c.zeros(.float, [batch, channels] + image)
                let px = x.pointer(Float.self), py = y.mutable(Float.self)
                var kIndex = [Int](repeating: 0, count: r), lIndex = [Int](repeating: 0, count: r)
                for k in 0..<kernel {
                    var rest = k
                    for d in stride(from: r - 1, through: 0, by: -1) { kIndex[d] = rest % block[d]; rest /= block[d] }
                    for l in 0..<positions {
                        var restL = l, pixel = 0, inside = true
                        for d in stride(from: r - 1, through: 0, by: -1) { lIndex[d] = restL % blocks[d]; restL /= blocks[d] }
                        for d in 0..<r {
                            let p = lIndex[d] * steps[d] - pads[d] + kIndex[d] * dil[d]
                            if p < 0 || p >= image[d] { inside = false; break }
                            pixel = pixel * image[d] + p
                        }
                        guard inside else { continue }
                        for b in 0..<batch { for ch in 0..<channels {
                            py[(b * channels + ch) * pixels + pixel] += px[((b * channels + ch) * kernel + k) * positions + l]
                        } }
                    }
                }
                return [y]
            }
        },
    ]
}
