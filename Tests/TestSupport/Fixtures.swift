import Foundation

/// Where the shared models and conformance cases live (`../shared` next to the checkout), or nil
/// when this clone has none; tests that need them skip loudly.
public enum SharedFixtures {
    public static var root: URL? {
        let here = URL(fileURLWithPath: #filePath)  // Tests/TestSupport/Fixtures.swift
        let repo = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [
            ProcessInfo.processInfo.environment["MBCONVERT_SHARED"].map { URL(fileURLWithPath: $0) },
            repo.deletingLastPathComponent().appendingPathComponent("shared"),
        ].compactMap { $0 }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("models").path) }
    }

    public static var models: URL? { root?.appendingPathComponent("models") }
    public static var onnxBackend: URL? { root?.appendingPathComponent("onnx-backend") }

    /// The repository root (for Examples/ and the built binary).
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Prints a loud skip line; use with `XCTSkip`/`#require` in the caller.
    public static func skipMessage(_ what: String) -> String {
        let msg = "SKIPPED: \(what) needs ../shared (not present in this clone); set MBCONVERT_SHARED to run it"
        FileHandle.standardError.write((msg + "\n").data(using: .utf8)!)
        return msg
    }
}
