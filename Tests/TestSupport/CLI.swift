import Foundation

/// Runs the built `mbconvert` binary (or another product of this package) and captures what it
/// prints, so CLI tests check real output and exit codes.
public struct CLIResult: CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

public enum CLI {
    /// The folder with the built products: the test bundle sits beside them.
    public static var productsDirectory: URL {
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }

    public static func executable(_ name: String = "mbconvert") -> URL {
        productsDirectory.appendingPathComponent(name)
    }

    /// Runs the package product `name` with `arguments` in `directory` (default: the repository root).
    public static func run(_ arguments: [String], product name: String = "mbconvert", in directory: URL? = nil) throws -> CLIResult {
        try runSystem(executable(name).path, arguments, in: directory)
    }

    /// Runs any executable by path.
    public static func runSystem(_ path: String, _ arguments: [String], in directory: URL? = nil) throws -> CLIResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = directory ?? SharedFixtures.repositoryRoot
        // Files, not pipes: a chatty child can never block on a full pipe.
        let dir = FileManager.default.temporaryDirectory
        let outURL = dir.appendingPathComponent("mbconvert-cli-\(UUID().uuidString).out")
        let errURL = dir.appendingPathComponent("mbconvert-cli-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        let outData = try Data(contentsOf: outURL)
        let errData = try Data(contentsOf: errURL)
        return CLIResult(status: process.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// Golden files with a re-record switch: set MBCONVERT_RECORD_SNAPSHOTS=1 to rewrite them.
public enum Snapshot {
    public static var recording: Bool { ProcessInfo.processInfo.environment["MBCONVERT_RECORD_SNAPSHOTS"] == "1" }

    /// Compares `actual` with the file at `path`; returns a description of the difference or nil.
    public static func check(_ actual: String, against path: URL) -> String? {
        if recording {
            try? FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? actual.write(to: path, atomically: true, encoding: .utf8)
            return nil
        }
        guard let expected = try? String(contentsOf: path, encoding: .utf8) else {
            return "no snapshot at \(path.path); run with MBCONVERT_RECORD_SNAPSHOTS=1 to record it"
        }
        guard expected != actual else { return nil }
        let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let line = zip(a, e).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, e.count)
        let got = line < a.count ? String(a[line]) : "<end>"
        let want = line < e.count ? String(e[line]) : "<end>"
        return "\(path.lastPathComponent) differs at line \(line + 1):\n  expected: \(want)\n  actual:   \(got)\n(MBCONVERT_RECORD_SNAPSHOTS=1 re-records)"
    }
}
