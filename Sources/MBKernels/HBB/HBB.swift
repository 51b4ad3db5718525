/// The heterogeneous-bitwidth binarization engine (HBB.md): the arithmetic that weights
/// (MBBinarize) and run-time activations (`ActivationBinarizer`, `MiddleOutMask`) share, written
/// once, each fast form beside its plain reference:
///
/// | piece | fast | plain reference |
/// | --- | --- | --- |
/// | canonical sum of \|v\| (every mean) | `canonicalAbsSum` over an entry list; CBitPlanes `bp_active_abs_sum` over a mask predicate | `canonicalSum` |
/// | selection of the c smallest keys (Middle-Out, Top-Down, Bottom-Up) | `selectSmallest` (radix select) | sort by (key, index) in the tests and `Binarizer.binarizeReference` |
/// | one residual level (signs, E -= mu s, who goes on) | `applyLevel` (packed sign streams); CBitPlanes `bp_residual_level_sum` (flat bitsets) | `Binarizer.binarizeReference`, `ActivationBinarizer.residualPlain` |
///
/// Everything is `@inlinable` so that callers in other modules get the specialized loops.
public enum HBB {}

extension HBB {
    /// The entries one level works on, in ascending index order (positions within a group).
    public protocol ActiveEntries {
        var count: Int { get }
        subscript(i: Int) -> Int { get }
    }

    /// Every entry (level 1, and any level before an entry has left).
    @frozen public struct AllEntries: ActiveEntries {
        public let count: Int
        @inlinable public init(count: Int) { self.count = count }
        @inlinable @inline(__always) public subscript(i: Int) -> Int { i }
    }

    /// A compacted, ascending list of entry positions.
    @frozen public struct ListedEntries: ActiveEntries {
        public let list: UnsafePointer<UInt32>
        public let count: Int
        @inlinable public init(list: UnsafePointer<UInt32>, count: Int) {
            self.list = list
            self.count = count
        }
        @inlinable @inline(__always) public subscript(i: Int) -> Int { Int(truncatingIfNeeded: list[i]) }
    }

    /// round(p * n), halves away from zero (HBB.md section 3).
    @inlinable @inline(__always)
    public static func roundedCount(_ fraction: Double, of n: Int) -> Int {
        Int((fraction * Double(n)).rounded(.toNearestOrAwayFromZero))
    }
}
