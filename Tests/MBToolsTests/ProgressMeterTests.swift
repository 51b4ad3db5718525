import Foundation
import MBTools
import Testing

/// The progress meter's three styles, driven by a fake clock and a recording writer.
@Suite struct ProgressMeterTests {
    final class Recorder: @unchecked Sendable {
        var pieces: [String] = []
        var now = 0.0
    }

    func meter(_ style: ProgressMeter.Style, _ r: Recorder) -> ProgressMeter {
        ProgressMeter(label: "calibrating", style: style, write: { r.pieces.append($0) }, clock: { r.now })
    }

    @Test func estimatesTheTimeLeftAtTheAverageRate() {
        #expect(ProgressMeter.remaining(elapsed: 10, done: 25, total: 100) == 30)
        #expect(ProgressMeter.remaining(elapsed: 10, done: 0, total: 100) == nil)
        #expect(ProgressMeter.remaining(elapsed: 10, done: 100, total: 100) == nil)
        #expect(ProgressMeter.duration(4.25) == "4.2 s")
        #expect(ProgressMeter.duration(42) == "42 s")
        #expect(ProgressMeter.duration(185) == "3 min 05 s")
        #expect(ProgressMeter.duration(7800) == "2 h 10 min")
        #expect(ProgressMeter.bar(done: 1, total: 4, width: 8) == "[##------]")
    }

    @Test func plainLinesEveryTenthWithTheEstimate() {
        let r = Recorder()
        let m = meter(.lines, r)
        for done in 0...100 {
            r.now = Double(done) * 0.1
            m.update(done: done, total: 100, detail: "pass 1 of 2")
        }
        m.finish()
        #expect(r.pieces.count == 11, "\(r.pieces)")
        #expect(r.pieces.allSatisfy { $0.hasSuffix("\n") && !$0.contains("\r") })
        #expect(r.pieces[5] == "calibrating: 50/100 (50 %, 5.0 s elapsed, ETA 5.0 s  pass 1 of 2)\n", "\(r.pieces[5])")
    }

    @Test func percentagesOnlyWithoutAUnit() {
        let r = Recorder()
        let m = ProgressMeter(label: "calibrating", style: .lines, unit: nil, write: { r.pieces.append($0) }, clock: { r.now })
        m.update(done: 0, total: 4)
        r.now = 3
        m.update(done: 1, total: 4, detail: "pass 1 of 3")
        #expect(r.pieces == ["calibrating: 0 % (0.0 s elapsed)\n", "calibrating: 25 % (3.0 s elapsed, ETA 9.0 s  pass 1 of 3)\n"], "\(r.pieces)")
    }

    @Test func terminalRedrawsOneLineAndClearsIt() {
        let r = Recorder()
        let m = meter(.terminal, r)
        r.now = 0; m.update(done: 0, total: 8)
        r.now = 0.05; m.update(done: 1, total: 8)  // within 0.1 s of the last redraw: skipped
        r.now = 2; m.update(done: 2, total: 8)
        m.finish()
        #expect(r.pieces.count == 3, "\(r.pieces)")
        #expect(r.pieces[1] == "\rcalibrating [######------------------] 2/8, ETA 6.0 s\u{1B}[K", "\(r.pieces[1])")
        #expect(r.pieces[2] == "\r\u{1B}[K")
    }

    @Test func silentWritesNothing() {
        let r = Recorder()
        let m = meter(.silent, r)
        m.update(done: 1, total: 2)
        m.finish(summary: "done")
        #expect(r.pieces.isEmpty)
        #expect(ProgressMeter.Style.forStream(quiet: true) == .silent)
    }
}
