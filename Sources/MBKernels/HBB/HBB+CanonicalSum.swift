extension HBB {
    /// Sum of |values[j]| over the active entries, in Double: the canonical accumulation every
    /// HBB mean uses (HBB.md: "means accumulate in double precision"). Entry number i of the
    /// active list goes to lane i % 8; the lanes are combined as
    /// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). Fixing the order makes every fast form
    /// (this one, CBitPlanes' vector passes) and the reference agree bit for bit; eight lanes
    /// keep the adds off one dependency chain.
    @inlinable @inline(__always)
    public static func canonicalAbsSum<A: ActiveEntries>(_ active: A, _ values: UnsafePointer<Float>) -> Double {
        var l0 = 0.0, l1 = 0.0, l2 = 0.0, l3 = 0.0, l4 = 0.0, l5 = 0.0, l6 = 0.0, l7 = 0.0
        let n = active.count
        var i = 0
        while i + 8 <= n {
            l0 += Double(abs(values[active[i]]))
            l1 += Double(abs(values[active[i + 1]]))
            l2 += Double(abs(values[active[i + 2]]))
            l3 += Double(abs(values[active[i + 3]]))
            l4 += Double(abs(values[active[i + 4]]))
            l5 += Double(abs(values[active[i + 5]]))
            l6 += Double(abs(values[active[i + 6]]))
            l7 += Double(abs(values[active[i + 7]]))
            i += 8
        }
        if i < n { l0 += Double(abs(values[active[i]])); i += 1 }
        if i < n { l1 += Double(abs(values[active[i]])); i += 1 }
        if i < n { l2 += Double(abs(values[active[i]])); i += 1 }
        if i < n { l3 += Double(abs(values[active[i]])); i += 1 }
        if i < n { l4 += Double(abs(values[active[i]])); i += 1 }
        if i < n { l5 += Double(abs(values[active[i]])); i += 1 }
        if i < n { l6 += Double(abs(values[active[i]])); i += 1 }
        return ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
    }

    /// The canonical accumulation in its plain form (the reference of every fast form).
    public static func canonicalSum(_ xs: [Double]) -> Double {
        var lanes = [Double](repeating: 0, count: 8)
        for (i, x) in xs.enumerated() { lanes[i % 8] += x }
        return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    }

    /// mu = mean |E| as the Float scale that is stored and used for the residual update.
    @inlinable @inline(__always)
    public static func levelScale(sum: Double, count: Int) -> Float { Float(sum / Double(count)) }
}
