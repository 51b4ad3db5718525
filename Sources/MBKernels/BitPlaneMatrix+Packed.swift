import MBCore

extension BitPlaneMatrix {
    /// How a weight tensor's axes map to rows (outputs), taps and channels (the reduction).
    public enum WeightKind: Sendable, Equatable {
        /// Conv weight `[O, C, k...]`: rows O, taps = product of k, channels C.
        case conv
        /// Gemm/MatMul B: `[N, K]` when `transposed` (Gemm transB = 1), else `[K, N]`; rows N.
        case matrix(transposed: Bool)
    }

    /// Why a packed tensor cannot be laid out as bit planes (the caller expands it instead).
    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    /// Lays out `packed` for the kernels (for a grouped Conv, the output rows of group `group`
    /// of `groups`). Scales must be per tensor or per output row.
    public convenience init(packed: PackedTensor, kind: WeightKind, group: Int = 0, groups: Int = 1) throws(Unsupported) {
        let shape = packed.shape
        let rows: Int, taps: Int, channels: Int, rowStride: Int, tapStride: Int, channelStride: Int, outputAxis: Int
        switch kind {
        case .conv:
            guard shape.count >= 3 else { throw Unsupported(description: "conv weight \(shape) has fewer than 3 dimensions") }
            rows = shape[0]
            channels = shape[1]
            taps = shape[2...].reduce(1, *)
            rowStride = channels * taps
            tapStride = 1
            channelStride = taps
            outputAxis = 0
        case .matrix(let transposed):
            guard shape.count == 2 else { throw Unsupported(description: "matrix weight \(shape) is not 2-D") }
            taps = 1
            tapStride = 0
            if transposed {
                rows = shape[0]; channels = shape[1]; rowStride = channels; channelStride = 1; outputAxis = 0
            } else {
                rows = shape[1]; channels = shape[0]; rowStride = 1; channelStride = rows; outputAxis = 1
            }
        }
        guard packed.levels.count <= PackedTensor.maxLevels else { throw Unsupported(description: "\(packed.levels.count) levels") }
        let layout = packed.layout
        let perRowScale: Bool
        switch packed.scale {
        case .tensor: perRowScale = false
        case .channel(let axis):
            guard axis == outputAxis else {
                throw Unsupported(description: "scales along axis \(axis), not the output axis \(outputAxis)")
            }
            perRowScale = true
        }
        guard groups >= 1, rows % groups == 0, (0..<groups).contains(group), groups == 1 || kind == .conv else {
            throw Unsupported(description: "group \(group) of \(groups) for \(rows) rows")
        }
        let groupRows = rows / groups, first = group * groupRows
        let L = packed.levels.count
        let scales = (0..<L).map { k in
            (0..<groupRows).map { o in packed.levels[k].scales[perRowScale ? first + o : 0] }
        }
        var source = Source(rows: groupRows, taps: taps, tapChannels: channels, rowStride: rowStride, tapStride: tapStride,
                            channelStride: channelStride, mask: packed.mask, signs: packed.flatSignBits(layout), scales: scales)
        source.offset = first * rowStride
        self.init(source)
    }
}

extension PackedTensor {
    /// Per level, a flat bitset with bit j set when entry j's sign at that level is +1 (entries
    /// below the level are 0): the sign streams (group-major, active entries only) scattered
    /// back to flat positions.
    public func flatSignBits(_ layout: GroupLayout) -> [[UInt64]] {
        let n = count
        var out = [[UInt64]](repeating: [UInt64](repeating: 0, count: (n + 63) / 64), count: levels.count)
        for k in 0..<levels.count {
            levels[k].signs.withUnsafeBufferPointer { stream in
                out[k].withUnsafeMutableBufferPointer { bits in
                    mask.withUnsafeBufferPointer { mask in
                        var c = 0
                        let level = UInt8(k + 1)
                        for p in 0..<n {
                            let j = layout.isIdentity ? p : layout.flatIndex(ofGroupMajor: p)
                            guard mask[j] >= level else { continue }
                            if (stream[c >> 6] >> UInt64(c & 63)) & 1 == 1 { bits[j >> 6] |= UInt64(1) << UInt64(j & 63) }
                            c += 1
                        }
                    }
                }
            }
        }
        return out
    }
}
