import MBCore
/// A named float tensor: the input of every binarization entry point.
public struct FloatTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) throws(BinarizeError) {
        guard shape.allSatisfy({ $0 >= 0 }), let count = Self.count(shape), count == values.count else {
            throw .invalidTensor(tensor: name, reason: "shape \(shape) does not hold \(values.count) values")
        }
        self.name = name
        self.shape = shape
        self.values = values
    }

    /// A rank-1 tensor.
    public init(name: String, values: [Float]) {
        self.name = name
        shape = [values.count]
        self.values = values
    }

    static func count(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }
}

/// One binarization setting.
public struct BinarizationConfig: Sendable, Hashable {
    public var distribution: BitDistribution
    public var method: MaskMethod
    public var scale: ScaleMode
    /// Seed of the Random method's permutation.
    public var seed: UInt64

    public init(distribution: BitDistribution, method: MaskMethod = .middleOut, scale: ScaleMode = .tensor, seed: UInt64 = 0) {
        self.distribution = distribution
        self.method = method
        self.scale = scale
        self.seed = seed
    }
}
