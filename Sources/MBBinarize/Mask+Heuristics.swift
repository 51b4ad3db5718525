import MBCore
// Selection keys of the mask heuristics (HBB.md section 3), as unsigned integers whose order is
// the order of the keys: a non-negative Double or Float compares like its bit pattern.

/// Middle-Out: key_j = | |v_j| - m |, computed in Double, with m the mean |v| over the
/// remaining entries. `values` is T for Middle-Out and the residual E for the residual variant.
struct MiddleOutKey: SelectionKey {
    let values: UnsafePointer<Float>
    let mean: Double
    @inline(__always) func key(_ j: Int) -> UInt64 { abs(Double(abs(values[j])) - mean).bitPattern }
    @inline(__always) func coarse(_ key: UInt64) -> UInt32 { Float(Double(bitPattern: key)).bitPattern }
}

/// Top-Down: key_j = -|T_j| (largest magnitudes first).
struct TopDownKey: SelectionKey {
    let values: UnsafePointer<Float>
    @inline(__always) func key(_ j: Int) -> UInt64 { UInt64(0x7F80_0000 &- abs(values[j]).bitPattern) << 32 }
    @inline(__always) func coarse(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key >> 32) }
}

/// Bottom-Up: key_j = |T_j| (smallest magnitudes first).
struct BottomUpKey: SelectionKey {
    let values: UnsafePointer<Float>
    @inline(__always) func key(_ j: Int) -> UInt64 { UInt64(abs(values[j]).bitPattern) << 32 }
    @inline(__always) func coarse(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key >> 32) }
}

/// round(p * n), halves away from zero (HBB.md section 3).
@inline(__always)
func roundedCount(_ fraction: Double, of n: Int) -> Int {
    Int((fraction * Double(n)).rounded(.toNearestOrAwayFromZero))
}
