import MBCore
import MBKernels
import XCTest

/// `Reduce` against its Double reference: every kind over `[outer, length, inner]` shapes with
/// SIMD tails (lengths around 8, 16 and the 1024-value block), one and two threads, and NaN.
final class ReduceKernelTests: XCTestCase {
    func testFastMatchesReferenceOverShapesWithTails() {
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (3, 7, 1), (2, 9, 1), (5, 17, 1), (4, 49, 1), (2, 1023, 1), (1, 2049, 1),
                                         (600, 13, 1), (1, 5, 3), (2, 7, 17), (3, 1030, 5), (1, 64, 300), (1, 3, 4099), (4, 9, 65)]
        var seed: UInt64 = 900
        for (outer, length, inner) in shapes {
            seed += 1
            let x = randomFloats(outer * length * inner, seed: seed)
            for kind in Reduce.Kind.allCases {
                for threads in [1, 2] {
                    var fast = [Float](repeating: .nan, count: outer * inner), ref = fast
                    Reduce.forward(.fast, kind, outer: outer, length: length, inner: inner, input: x, output: &fast, threads: threads)
                    Reduce.forward(.reference, kind, outer: outer, length: length, inner: inner, input: x, output: &ref)
                    let what = "reduce \(kind) [\(outer), \(length), \(inner)] threads=\(threads) seed=\(seed)"
                    if kind == .max || kind == .min {
                        XCTAssertEqual(fast, ref, what)
                    } else {
                        assertClose(fast, ref, terms: kind == .sum ? length : 1, what)
                    }
                }
            }
        }
    }

    /// A NaN anywhere in a run makes max and min NaN, in the vector body and in the tail, and
    /// leaves the other runs alone.
    func testMaxAndMinPropagateNaN() {
        for (length, inner) in [(20, 1), (11, 1), (6, 3)] {
            for at in [0, length / 2, length - 1] {
                var x = randomFloats(2 * length * inner, seed: 77)
                x[at * inner] = .nan
                for kind in [Reduce.Kind.max, .min] {
                    var y = [Float](repeating: 0, count: 2 * inner)
                    Reduce.forward(.fast, kind, outer: 2, length: length, inner: inner, input: x, output: &y)
                    XCTAssertTrue(y[0].isNaN, "\(kind) length \(length) inner \(inner) NaN at \(at): \(y)")
                    XCTAssertFalse(y[inner].isNaN, "\(kind) length \(length) inner \(inner): second run \(y)")
                }
            }
        }
    }
}
