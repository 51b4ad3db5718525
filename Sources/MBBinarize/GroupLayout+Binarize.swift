import MBCore

extension GroupLayout {
    /// The layout of `tensor`'s entries under `scale`, with problems as BinarizeError naming it.
    init(shape: [Int], scale: ScaleMode, tensor: String) throws(BinarizeError) {
        if case .channel(let axis) = scale, axis < 0 || axis >= shape.count {
            throw .invalidConfiguration("channel axis \(axis) is outside the \(shape.count) dimensions of tensor '\(tensor)' \(shape)")
        }
        do throws(PackedTensorError) {
            try self.init(shape: shape, scale: scale)
        } catch {
            throw .invalidTensor(tensor: tensor, reason: error.message)
        }
    }
}

extension PackedTensor {
    /// `validate()` with problems as BinarizeError.
    func validated() throws(BinarizeError) {
        do throws(PackedTensorError) {
            try validate()
        } catch {
            throw .invalidPacked(error.message)
        }
    }
}
