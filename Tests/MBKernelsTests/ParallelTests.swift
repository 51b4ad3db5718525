import Dispatch
@testable import MBKernels
import XCTest

/// `Parallel.forEach` visits every index exactly once whether it runs on the spinning worker
/// pool, falls back to GCD (pool busy: nested or concurrent callers) or runs serially.
final class ParallelTests: XCTestCase {
    /// Runs forEach over `count` indices and returns how often each was visited.
    private static func visits(_ count: Int, threads: Int, nested: Bool = false) -> [Int] {
        var seen = [Int](repeating: 0, count: count)
        seen.withUnsafeMutableBufferPointer { buffer in
            let p = UncheckedSendable(buffer.baseAddress!)
            Parallel.forEach(count, threads: threads) { i in
                if nested {
                    // A chunk that parallelizes finds the pool busy and uses GCD.
                    var inner = [Int](repeating: 0, count: 5)
                    inner.withUnsafeMutableBufferPointer { ib in
                        let q = UncheckedSendable(ib.baseAddress!)
                        Parallel.forEach(5, threads: 2) { j in q.value[j] += 1 }
                    }
                    guard inner == [1, 1, 1, 1, 1] else { return }
                }
                p.value[i] += 1
            }
        }
        return seen
    }

    func testEveryIndexOnce() {
        for count in [0, 1, 2, 3, 7, 8, 9, 100, 1001] {
            for threads in [1, 2, 3, 4] {
                let v = Self.visits(count, threads: threads)
                XCTAssertEqual(v, [Int](repeating: 1, count: count), "count \(count) threads \(threads): visits \(v.prefix(20))")
            }
        }
    }

    func testNestedCallsFallBack() {
        XCTAssertEqual(Self.visits(37, threads: 2, nested: true), [Int](repeating: 1, count: 37))
    }

    func testConcurrentCallers() {
        let results = UncheckedSendable(UnsafeMutablePointer<Bool>.allocate(capacity: 4))
        defer { results.value.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { c in
            var ok = true
            for round in 0..<50 { ok = ok && ParallelTests.visits(64 + c + round, threads: 2) == [Int](repeating: 1, count: 64 + c + round) }
            results.value[c] = ok
        }
        for c in 0..<4 { XCTAssertTrue(results.value[c], "caller \(c): some index was not visited exactly once") }
    }
}
