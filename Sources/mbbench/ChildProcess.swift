import Foundation

/// A benchmark's child process (our own `run-once`/`import-once`, or a Python baseline): run to
/// completion with its stderr passing through; a failure names the script or executable.
enum ChildProcess {
    /// Everything the child printed on stdout.
    static func output(_ executable: String, _ arguments: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let name = (arguments.first { $0.hasSuffix(".py") } ?? arguments.first) ?? executable
            throw BenchmarkError("\(name) failed with status \(p.terminationStatus)")
        }
        return data
    }

    /// The last line the child printed, decoded from JSON (what it measured).
    static func lastLineJSON<T: Decodable>(_ type: T.Type, _ executable: String, _ arguments: [String]) throws -> T {
        let data = try output(executable, arguments)
        guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else {
            throw BenchmarkError("\(arguments.first ?? executable) printed nothing")
        }
        return try JSONDecoder().decode(T.self, from: Data(line.utf8))
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
