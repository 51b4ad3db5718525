import Foundation

/// This process's memory, for the `run` report and the benchmarks' child processes.
public enum ProcessMemory {
    /// Resident and peak resident bytes (Linux: VmRSS and VmHWM of /proc/self/status); nil where
    /// that file does not exist.
    public static func current() -> (residentBytes: Int, peakBytes: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kB(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
        }
        guard let rss = kB("VmRSS"), let hwm = kB("VmHWM") else { return nil }
        return (rss, hwm)
    }

    /// Peak resident bytes: VmHWM on Linux, `ru_maxrss` on Darwin, 0 where neither is known.
    public static func peakBytes() -> Int {
        if let m = current() { return m.peakBytes }
        #if canImport(Darwin)
        var usage = rusage()
        getrusage(RUSAGE_SELF, &usage)
        return Int(usage.ru_maxrss)  // bytes on Darwin
        #else
        return 0
        #endif
    }
}
