import MBKernels
import XCTest

/// The blocked, threaded matrix transpose equals its plain reference on every shape class: rows
/// and columns below, at and past a 16-element block, a few columns (an image's channels) with
/// many rows, batches, one to three threads, matrices large enough to be split.
final class TransposeTests: XCTestCase {
    func testMatchesReference() {
        let shapes: [(batch: Int, rows: Int, cols: Int)] = [
            (1, 1, 1), (1, 1, 7), (1, 7, 1), (1, 16, 16), (1, 17, 33), (2, 45, 3), (3, 5, 70), (1, 50176 / 4, 3), (2, 300, 129), (1, 70, 4096),
        ]
        for (k, s) in shapes.enumerated() {
            let n = s.batch * s.rows * s.cols
            let src: [UInt32] = (0..<n).map { (i: Int) -> UInt32 in UInt32(truncatingIfNeeded: i &* 2_654_435_761 &+ k) }
            var want = [UInt32](repeating: 0, count: n)
            src.withUnsafeBufferPointer { sp in
                want.withUnsafeMutableBufferPointer { Transpose.reference(sp.baseAddress!, $0.baseAddress!, batch: s.batch, rows: s.rows, cols: s.cols) }
            }
            // The reference is the definition: dst[n][c][r] = src[n][r][c].
            if s.rows > 1 && s.cols > 1 { XCTAssertEqual(want[s.rows], src[1], "\(s): reference dst[0][1][0]") }
            for threads in 1...3 {
                var got = [UInt32](repeating: 0xFFFF_FFFF, count: n)
                src.withUnsafeBufferPointer { sp in
                    got.withUnsafeMutableBufferPointer { Transpose.matrices(sp.baseAddress!, $0.baseAddress!, batch: s.batch, rows: s.rows, cols: s.cols, threads: threads) }
                }
                if let i = got.indices.first(where: { got[$0] != want[$0] }) {
                    XCTFail("\(s) threads=\(threads): element \(i) got \(got[i]) want \(want[i])")
                }
            }
        }
    }
}
