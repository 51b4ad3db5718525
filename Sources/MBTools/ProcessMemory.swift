import Foundation

/// This process's resident memory (Linux: VmRSS and VmHWM of /proc/self/status); nil where
/// that file does not exist.
public enum ProcessMemory {
    public static func current() -> (residentBytes: Int, peakBytes: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kB(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
        }
        guard let rss = kB("VmRSS"), let hwm = kB("VmHWM") else { return nil }
        return (rss, hwm)
    }
}
