import MBCore
/// Everything that can go wrong in MBBinarize, each case carrying enough context to name the
/// tensor and the offending value or setting.
public enum BinarizeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A NaN or infinite input value: `tensor 'conv1.weight': element 17 is NaN`.
    case nonFinite(tensor: String, index: Int, value: Float)
    /// A configuration that cannot be used (bit widths, fractions, axis, ...).
    case invalidConfiguration(String)
    /// Values and shape disagree, or a group is too large for 32-bit entry indices.
    case invalidTensor(tensor: String, reason: String)
    /// A mask given by the caller is not usable with this tensor.
    case invalidMask(tensor: String, reason: String)
    /// A packed tensor whose parts do not fit together.
    case invalidPacked(String)

    public var description: String {
        switch self {
        case .nonFinite(let tensor, let index, let value):
            let what = value.isNaN ? "NaN" : (value > 0 ? "+Inf" : "-Inf")
            return "tensor '\(tensor)': element \(index) is \(what)"
        case .invalidConfiguration(let reason):
            return "invalid binarization setting: \(reason)"
        case .invalidTensor(let tensor, let reason):
            return "tensor '\(tensor)': \(reason)"
        case .invalidMask(let tensor, let reason):
            return "tensor '\(tensor)': mask \(reason)"
        case .invalidPacked(let reason):
            return "packed tensor: \(reason)"
        }
    }
}
