import Foundation
import MBRuntime

extension MBModel {
    /// `MBModel(contentsOfFile:)` for a file URL. Here, not in MBRuntime, so that the runtime
    /// alone does not load Foundation (about 11 MB of resident memory on Linux).
    public convenience init(contentsOf url: URL, verifyChecksums: Bool = true, options: Options = Options()) throws {
        try self.init(contentsOfFile: url.path, verifyChecksums: verifyChecksums, options: options)
    }
}
