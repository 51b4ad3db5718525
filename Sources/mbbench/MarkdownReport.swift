import Foundation

/// A measured table as the README carries it: headed by the date, the exact command and how it
/// was measured, so every figure there says where it came from and can be regenerated.
enum MarkdownReport {
    static func print(method: String, header: [String], rows: [[String]], notes: [String] = []) {
        let date = ISO8601DateFormatter().string(from: Date())
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .map { "; load average at the end: " + $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? ""
        Swift.print("Measured \(date) with `mbbench \(CommandLine.arguments.dropFirst().joined(separator: " "))`; \(method)\(load).\n")
        Swift.print("| " + header.joined(separator: " | ") + " |")
        Swift.print("|" + header.map { _ in "---" }.joined(separator: "|") + "|")
        for r in rows { Swift.print("| " + r.joined(separator: " | ") + " |") }
        if !notes.isEmpty { Swift.print(""); for n in notes { Swift.print("- " + n) } }
    }
}
