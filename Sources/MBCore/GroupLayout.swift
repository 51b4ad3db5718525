/// Which entries share scales, and the order in which a packed tensor lists them.
///
/// Entries are processed and packed in *group-major* order: group 0's entries in flat order,
/// then group 1's, and so on. With tensor scales there is one group and group-major order is
/// flat order; with channel scales along axis `a` the groups are the slices `index[a] == c`,
/// and for axis 0 (or when every dimension before `a` is 1) group-major order is flat order too.
public struct GroupLayout: Sendable, Equatable {
    /// Number of entries.
    public let count: Int
    public let groupCount: Int
    /// Entries per group (all groups are the same size).
    public let groupSize: Int
    /// Product of the dimensions before the axis, and after it.
    private let outer: Int
    private let inner: Int

    public init(shape: [Int], scale: ScaleMode) throws(PackedTensorError) {
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard d >= 0, !o else { throw PackedTensorError("shape \(shape) overflows") }
            n = p
        }
        count = n
        switch scale {
        case .tensor:
            groupCount = 1
            groupSize = n
            outer = 1
            inner = n
        case .channel(let axis):
            guard axis >= 0, axis < shape.count else {
                throw PackedTensorError("channel axis \(axis) is outside the \(shape.count) dimensions of shape \(shape)")
            }
            groupCount = shape[axis]
            outer = shape[..<axis].reduce(1, *)
            inner = shape[(axis + 1)...].reduce(1, *)
            groupSize = outer * inner
        }
        guard groupSize <= Int(UInt32.max) else {
            throw PackedTensorError("\(groupSize) entries share one set of scales; at most \(UInt32.max) are supported")
        }
    }

    /// Group-major order is flat order.
    public var isIdentity: Bool { outer == 1 || groupCount <= 1 }

    /// The flat index of group-major position `p`.
    public func flatIndex(ofGroupMajor p: Int) -> Int {
        if isIdentity { return p }
        let c = p / groupSize, r = p % groupSize
        let o = r / inner, i = r % inner
        return (o * groupCount + c) * inner + i
    }

    public func toGroupMajor<T>(_ flat: [T]) -> [T] {
        if isIdentity { return flat }
        var out = flat
        for p in 0..<count { out[p] = flat[flatIndex(ofGroupMajor: p)] }
        return out
    }

    public func toFlat<T>(_ groupMajor: [T]) -> [T] {
        if isIdentity { return groupMajor }
        var out = groupMajor
        for p in 0..<count { out[flatIndex(ofGroupMajor: p)] = groupMajor[p] }
        return out
    }
}

/// A packed tensor whose parts do not fit together, or a layout that cannot exist.
public struct PackedTensorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "packed tensor: " + message }
}
