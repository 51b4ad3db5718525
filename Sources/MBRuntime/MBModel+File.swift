import MBCore
import MBFormat

extension MBModel {
    /// Loads an `.mbm` file: memory-mapped and validated (every count, offset and checksum),
    /// then compiled. Binarized weights are expanded once, into exactly their stored values.
    /// Errors are `MBMError` (the file) or `MBRuntimeError` (the graph).
    /// `options.weights` chooses expanded (default) or packed bit planes for binarized weights.
    /// A path, not a URL: the runtime does not import Foundation (MBConvert adds
    /// `init(contentsOf: URL)` for code that has Foundation anyway).
    public convenience init(contentsOfFile path: String, verifyChecksums: Bool = true, options: Options = Options()) throws {
        let file = try MBMFile.open(path: path, options: .init(verifyChecksums: verifyChecksums))
        try self.init(ir: file.model, options: options)
    }
}
