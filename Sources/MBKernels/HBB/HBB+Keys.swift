extension HBB {
    // Selection keys of the mask heuristics (HBB.md section 3), as unsigned integers whose order is
    // the order of the keys: a non-negative Double or Float compares like its bit pattern.

    /// Middle-Out: key_j = | |v_j| - m |, computed in Double, with m the mean |v| over the
    /// remaining entries. `values` is T for Middle-Out and the residual E for the residual variant.
    @frozen public struct MiddleOutKey: SelectionKey {
        public let values: UnsafePointer<Float>
        public let mean: Double
        @inlinable public init(values: UnsafePointer<Float>, mean: Double) {
            self.values = values
            self.mean = mean
        }
        @inlinable @inline(__always) public func key(_ j: Int) -> UInt64 { abs(Double(abs(values[j])) - mean).bitPattern }
        @inlinable @inline(__always) public func coarse(_ key: UInt64) -> UInt32 { Float(Double(bitPattern: key)).bitPattern }
    }

    /// Top-Down: key_j = -|T_j| (largest magnitudes first).
    @frozen public struct TopDownKey: SelectionKey {
        public let values: UnsafePointer<Float>
        @inlinable public init(values: UnsafePointer<Float>) { self.values = values }
        @inlinable @inline(__always) public func key(_ j: Int) -> UInt64 { UInt64(0x7F80_0000 &- abs(values[j]).bitPattern) << 32 }
        @inlinable @inline(__always) public func coarse(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key >> 32) }
    }

    /// Bottom-Up: key_j = |T_j| (smallest magnitudes first).
    @frozen public struct BottomUpKey: SelectionKey {
        public let values: UnsafePointer<Float>
        @inlinable public init(values: UnsafePointer<Float>) { self.values = values }
        @inlinable @inline(__always) public func key(_ j: Int) -> UInt64 { UInt64(abs(values[j]).bitPattern) << 32 }
        @inlinable @inline(__always) public func coarse(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key >> 32) }
    }
}
