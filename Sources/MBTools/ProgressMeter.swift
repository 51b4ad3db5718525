import Foundation

/// A progress display for long jobs, with an estimate of the time left: one redrawn bar on a
/// terminal, plain lines (every tenth of the work, at most one per 10 s otherwise) when the
/// stream is a file or a pipe, nothing when quiet. Generic over what is counted (entries, bytes,
/// tensors): `unit` formats a count. Thread-safe; at most ten terminal redraws a second.
public final class ProgressMeter: @unchecked Sendable {
    public enum Style: Sendable, Equatable {
        case terminal, lines, silent

        /// `.silent` when quiet, `.terminal` when `fd` is a terminal, `.lines` otherwise.
        public static func forStream(_ fd: Int32 = STDERR_FILENO, quiet: Bool) -> Style {
            quiet ? .silent : isatty(fd) == 1 ? .terminal : .lines
        }
    }

    public let label: String
    public let style: Style
    /// nil: the counts mean nothing to a reader (abstract work units); percentages only.
    private let unit: (@Sendable (Int) -> String)?
    private let write: @Sendable (String) -> Void
    private let clock: @Sendable () -> Double
    private let lock = NSLock()
    private var started: Double?
    private var lastDraw = -Double.infinity
    private var lastLineTenth = -1
    private var lastLineTime = -Double.infinity
    private var drewBar = false

    /// `write` receives each piece of output (default: standard error); `clock` gives seconds
    /// (default: a monotonic clock). Both are parameters so tests can drive the meter.
    public init(label: String, style: Style, unit: (@Sendable (Int) -> String)? = { "\($0)" },
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
                clock: @escaping @Sendable () -> Double = { ProcessInfo.processInfo.systemUptime }) {
        self.label = label
        self.style = style
        self.unit = unit
        self.write = write
        self.clock = clock
    }

    /// Reports `done` of `total`; `detail` (a stage, a file) follows the counts.
    public func update(done: Int, total: Int, detail: String = "") {
        guard style != .silent else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = clock()
        if started == nil { started = now }
        let elapsed = now - started!
        let eta = Self.remaining(elapsed: elapsed, done: done, total: total)
        let percent = total > 0 ? 100 * Double(done) / Double(total) : 100
        let counts = unit.map { "\($0(done))/\($0(total))" } ?? String(format: "%.0f %%", percent)
        let tail = (eta.map { ", ETA \(Self.duration($0))" } ?? "") + (detail.isEmpty ? "" : "  \(detail)")
        switch style {
        case .terminal:
            guard now - lastDraw >= 0.1 || done >= total else { return }
            lastDraw = now
            drewBar = true
            write("\r\(label) \(Self.bar(done: done, total: total, width: 24)) \(counts)\(tail)\u{1B}[K")
        case .lines:
            let tenth = total > 0 ? min(10, done * 10 / total) : 10
            guard tenth > lastLineTenth || now - lastLineTime >= 10 else { return }
            lastLineTenth = tenth
            lastLineTime = now
            let share = unit == nil ? "" : String(format: "%.0f %%, ", percent)
            write("\(label): \(counts) (\(share)\(Self.duration(elapsed)) elapsed\(tail))\n")
        case .silent:
            break
        }
    }

    /// Ends the display: clears the bar on a terminal; `summary` (if any) is written as a line.
    public func finish(summary: String? = nil) {
        guard style != .silent else { return }
        lock.lock()
        defer { lock.unlock() }
        if drewBar { write("\r\u{1B}[K") }
        if let summary { write("\(label): \(summary)\n") }
    }

    /// Seconds left at the average rate so far; nil before any progress or once done.
    public static func remaining(elapsed: Double, done: Int, total: Int) -> Double? {
        guard done > 0, done < total, elapsed > 0 else { return nil }
        return elapsed / Double(done) * Double(total - done)
    }

    /// "0.4 s", "42 s", "3 min 05 s", "2 h 10 min".
    public static func duration(_ seconds: Double) -> String {
        if seconds < 10 { return String(format: "%.1f s", seconds) }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return String(format: "%d min %02d s", s / 60, s % 60) }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }

    /// `[#########---------------]` with `done * width / total` marks.
    public static func bar(done: Int, total: Int, width: Int) -> String {
        let filled = total > 0 ? max(0, min(width, done * width / total)) : width
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }
}
