import Foundation
#if canImport(XCTest)
import XCTest
#endif

/// What the tests need beyond Swift (`../shared`, a Python with onnx/onnxruntime/numpy) and
/// the one rule for each:
/// - under `CI=true` every prerequisite is required: a test that needs a missing one runs and
///   fails with one line naming what is missing (`Scripts/test.sh` checks them all first);
/// - outside CI such a test is reported as skipped (Swift Testing's `.enabled(if:)`, XCTest's
///   `XCTSkip`), never as passed.
///
/// The Python interpreter is `$MBCONVERT_PYTHON` when set (Scripts/test.sh sets it), else the
/// checkout's `.venv/bin/python` (Scripts/setup.sh creates it from Scripts/requirements.txt)
/// when it exists, else `python3` on the PATH. Scripts and mbbench follow the same rule.
public enum Prerequisites {
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    public static var python: String {
        if let p = ProcessInfo.processInfo.environment["MBCONVERT_PYTHON"], !p.isEmpty { return p }
        let venv = SharedFixtures.repositoryRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "python3"
    }

    /// Whether the Python interpreter imports every module (probed once per module set).
    public static func pythonHas(_ modules: [String]) -> Bool {
        let key = modules.sorted().joined(separator: ",")
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let known = importCache[key] { return known }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", "import " + modules.joined(separator: ", ")]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        var ok = false
        if (try? p.run()) != nil {
            p.waitUntilExit()
            ok = p.terminationStatus == 0
        }
        importCache[key] = ok
        return ok
    }

    nonisolated(unsafe) private static var importCache: [String: Bool] = [:]
    private static let cacheLock = NSLock()

    // MARK: Swift Testing conditions (`@Test(.enabled(if: Prerequisites.sharedRuns))`)

    /// A test that needs `../shared` runs when it is there, and always under CI (to fail there).
    public static var sharedRuns: Bool { isCI || SharedFixtures.root != nil }

    /// A test that needs these Python modules runs when they import, and always under CI.
    public static func pythonRuns(_ modules: String...) -> Bool { isCI || pythonHas(modules) }

    public static func pythonRuns(_ modules: String..., andShared: Bool) -> Bool {
        isCI || (pythonHas(modules) && (!andShared || SharedFixtures.root != nil))
    }

    // MARK: Inside a test

    /// The missing prerequisite, as an error that fails the test: thrown by the `require`
    /// helpers when a test runs without what it needs (under CI, or when the trait was skipped).
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// `../shared/models` or a failure naming what is missing.
    public static func requireModels(_ what: String) throws -> URL {
        guard let m = SharedFixtures.models else {
            throw Missing(description: "\(what) needs ../shared (set MBCONVERT_SHARED)\(isCI ? "; CI=true requires it" : "")")
        }
        return m
    }

    /// `../shared/onnx-backend` or a failure naming what is missing.
    public static func requireBackend(_ what: String) throws -> URL {
        guard let b = SharedFixtures.onnxBackend, FileManager.default.fileExists(atPath: b.path) else {
            throw Missing(description: "\(what) needs ../shared/onnx-backend (set MBCONVERT_SHARED)\(isCI ? "; CI=true requires it" : "")")
        }
        return b
    }

    /// The Python interpreter, when it imports `modules`; else a failure naming them.
    public static func requirePython(_ what: String, _ modules: String...) throws -> String {
        guard pythonHas(modules) else {
            throw Missing(description: "\(what) needs \(python) with \(modules.joined(separator: ", ")) (Scripts/setup.sh installs Scripts/requirements.txt into .venv)\(isCI ? "; CI=true requires it" : "")")
        }
        return python
    }

    /// A file the test needs from `../shared` (a model that must be there when the folder is).
    public static func requireFile(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(description: "\(path): missing from ../shared") }
        return path
    }

    #if canImport(XCTest)
    /// For XCTest: `XCTSkip` outside CI, a failing error under CI.
    public static func skipOrFail(_ missing: Missing) -> Error {
        if isCI { return missing }
        FileHandle.standardError.write(Data("SKIPPED: \(missing.description)\n".utf8))
        return XCTSkip(missing.description)
    }

    /// `../shared/models`, else XCTSkip (outside CI) or a failure (under CI).
    public static func xcModels(_ what: String) throws -> URL {
        do { return try requireModels(what) } catch let m as Missing { throw skipOrFail(m) }
    }

    /// `../shared/onnx-backend`, else XCTSkip (outside CI) or a failure (under CI).
    public static func xcBackend(_ what: String) throws -> URL {
        do { return try requireBackend(what) } catch let m as Missing { throw skipOrFail(m) }
    }
    #endif
}
