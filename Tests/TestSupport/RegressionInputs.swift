import Foundation

/// A folder of inputs a fuzz target once crashed, leaked or hung on, kept next to the suite that
/// replays them (`Regressions/<target>`). Each replay suite lists the folder as its test arguments
/// and reads one file per test, so a failure names the input.
public struct RegressionInputs: Sendable {
    public let folder: URL

    /// `Regressions/<subfolder>` beside the test file at `testFile` (pass `#filePath`).
    public init(beside testFile: String, subfolder: String? = nil) {
        var folder = URL(fileURLWithPath: testFile).deletingLastPathComponent().appendingPathComponent("Regressions")
        if let subfolder { folder.appendPathComponent(subfolder) }
        self.folder = folder
    }

    /// File names in the folder, sorted; empty when the folder is missing (`thereAreInputs` then fails).
    public var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    public func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
    }
}
