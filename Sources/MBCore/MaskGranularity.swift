/// Which entries share a bit width in a heterogeneous mask. The paper's mask is per
/// entry; structured masks give a bit width to a whole group of entries along the reduction
/// axis, so the bit-plane kernels skip whole words of the higher levels.
public enum MaskGranularity: Sendable, Hashable, CustomStringConvertible {
    /// One bit width per entry (the paper).
    case element
    /// One bit width per `n` consecutive entries of the reduction axis: for a Conv weight, `n`
    /// input channels at one kernel position of one output channel; for a Gemm/MatMul weight,
    /// `n` consecutive inputs of one output; for a Conv input, `n` channels of one pixel.
    case group(Int)
    /// One bit width per output channel (weights only).
    case channel

    /// "element", "group:64", "channel"; nil for anything else.
    public init?(parsing text: String) {
        switch text {
        case "element": self = .element
        case "channel": self = .channel
        default:
            guard text.hasPrefix("group:"), let n = Int(text.dropFirst(6)), n >= 1 else { return nil }
            self = .group(n)
        }
    }

    public var description: String {
        switch self {
        case .element: return "element"
        case .group(let n): return "group:\(n)"
        case .channel: return "channel"
        }
    }
}

/// A partition of a tensor's entries into mask groups: `ids[j]` is entry j's group, groups are
/// numbered `0..<count` in order of their first entry.
public struct MaskGroups: Sendable, Equatable {
    public var ids: [UInt32]
    public var count: Int

    public init(ids: [UInt32], count: Int) {
        self.ids = ids
        self.count = count
    }

    /// Groups for a weight: `rows` outputs, `taps` kernel positions, `channels` per tap, entry
    /// (row, tap, channel) at `row * rowStride + tap * tapStride + channel * channelStride`.
    /// `.group(n)`: n consecutive channels of one (row, tap); `.channel`: one group per row.
    public static func weight(rows: Int, taps: Int, channels: Int, rowStride: Int, tapStride: Int, channelStride: Int,
                              granularity: MaskGranularity) -> MaskGroups? {
        let n: Int
        switch granularity {
        case .element: return nil
        case .channel: n = channels
        case .group(let g): n = min(g, channels)
        }
        let perTap = (channels + n - 1) / n
        let perRow = granularity == .channel ? 1 : taps * perTap
        var ids = [UInt32](repeating: 0, count: rows * taps * channels)
        for o in 0..<rows {
            for t in 0..<taps {
                for c in 0..<channels {
                    let g = granularity == .channel ? o : o * perRow + t * perTap + c / n
                    ids[o * rowStride + t * tapStride + c * channelStride] = UInt32(g)
                }
            }
        }
        // Renumber in order of first entry (flat order), as the definition wants.
        var renumber = [Int32](repeating: -1, count: rows * perRow)
        var next: Int32 = 0
        for j in ids.indices {
            let g = Int(ids[j])
            if renumber[g] < 0 { renumber[g] = next; next += 1 }
            ids[j] = UInt32(renumber[g])
        }
        return MaskGroups(ids: ids, count: Int(next))
    }
}
