/// Element count of a shape with overflow and sign checks. Returns nil when a dimension is
/// negative or the product does not fit in `Int`.
public func elementCount<S: Sequence>(of dims: S) -> Int? where S.Element == Int64 {
    var count = 1
    for dim in dims {
        guard dim >= 0, let d = Int(exactly: dim) else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        count = product
    }
    return count
}

/// `[1, 3, 224, 224]` style text for shapes.
public func describeShape<S: Sequence>(_ dims: S) -> String where S.Element == Int64 {
    "[" + dims.map(String.init).joined(separator: ", ") + "]"
}

/// Element count of an `Int` shape (the IR's and the runtime's), with the same checks: nil when
/// a dimension is negative or the product does not fit in `Int`.
public func elementCount(of dims: [Int]) -> Int? {
    var count = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        count = product
    }
    return count
}

/// Bytes of `count` elements of `size` bytes each, nil on overflow.
public func byteCount(elements count: Int, size: Int) -> Int? {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
    return overflow || bytes < 0 ? nil : bytes
}
