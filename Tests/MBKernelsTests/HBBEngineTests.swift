import CBitPlanes
import MBCore
import MBKernels
import XCTest

/// The HBB engine's fast forms against their plain references (exact: equality, no tolerance):
/// the canonical sum over entry lists and as CBitPlanes' mask-predicate pass (every instruction
/// set) against `HBB.canonicalSum`, and the radix select against sorting by (key, index).
final class HBBEngineTests: XCTestCase {
    static let sizes = [1, 7, 8, 9, 63, 64, 65, 255, 256, 257, 4097, 70_001]

    /// Normal values with exact zeros and repeats (key ties), some huge and tiny magnitudes.
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in
            switch rng.next() % 8 {
            case 0: return 0
            case 1: return 0.5
            case 2: return Float(rng.nextNormal()) * 1e-30
            case 3: return Float(rng.nextNormal()) * 1e20
            default: return Float(rng.nextNormal())
            }
        }
    }

    func testCanonicalSumsEqualTheReference() {
        var seed: UInt64 = 9100
        for n in Self.sizes {
            seed += 1
            let v = values(n, seed: seed)
            var rng = SeededGenerator(seed: seed + 1)
            // Every entry, and a random ascending subset (as the shrinking active lists are).
            let mask = (0..<n).map { _ in UInt8(rng.next() % 3 != 0 ? 2 : 1) }
            let subset = (0..<n).filter { mask[$0] == 2 }
            for (what, list) in [("all", Array(0..<n)), ("subset", subset)] where !list.isEmpty {
                let expected = HBB.canonicalSum(list.map { Double(abs(v[$0])) })
                let indices = list.map { UInt32($0) }
                let listed = v.withUnsafeBufferPointer { v in
                    indices.withUnsafeBufferPointer { HBB.canonicalAbsSum(HBB.ListedEntries(list: $0.baseAddress!, count: list.count), v.baseAddress!) }
                }
                XCTAssertEqual(listed.bitPattern, expected.bitPattern, "list \(what) n=\(n) seed=\(seed)")
                for isa in BitPlaneMatrix.availableISAs {
                    var count: Int64 = 0
                    let mode: Int32 = what == "all" ? 0 : 1
                    let pass = v.withUnsafeBufferPointer { v in mask.withUnsafeBufferPointer { m in
                        bp_active_abs_sum(isa, v.baseAddress, m.baseAddress, Int64(n), mode, 2, &count)
                    } }
                    XCTAssertEqual(count, Int64(list.count), "count \(what) n=\(n) isa=\(BitPlaneMatrix.isaName(isa))")
                    XCTAssertEqual(pass.bitPattern, expected.bitPattern, "pass \(what) n=\(n) seed=\(seed) isa=\(BitPlaneMatrix.isaName(isa))")
                }
            }
        }
    }

    func testSelectSmallestEqualsSortingByKeyThenIndex() {
        var seed: UInt64 = 9300
        for n in Self.sizes {
            for fraction in [0.0, 0.1, 0.5, 0.7, 0.999, 1] {
                seed += 1
                let v = values(n, seed: seed)
                var rng = SeededGenerator(seed: seed + 1)
                let list = (0..<n).filter { _ in rng.next() % 4 != 0 }.map { UInt32($0) }
                guard !list.isEmpty else { continue }
                let c = min(HBB.roundedCount(fraction, of: n), list.count)
                let mean = HBB.canonicalSum(list.map { Double(abs(v[Int($0)])) }) / Double(list.count)
                var mask = [UInt8](repeating: 0, count: n)
                let scratch = HBB.SelectionScratch(capacity: n)
                defer { scratch.deallocate() }
                v.withUnsafeBufferPointer { v in list.withUnsafeBufferPointer { l in mask.withUnsafeMutableBufferPointer { m in
                    HBB.selectSmallest(HBB.ListedEntries(list: l.baseAddress!, count: l.count), count: c,
                                       key: HBB.MiddleOutKey(values: v.baseAddress!, mean: mean), mask: m.baseAddress!, mark: 3, scratch: scratch)
                } } }
                let key = { (j: Int) in abs(Double(abs(v[j])) - mean) }
                let chosen = Set(list.map(Int.init).sorted { (key($0), $0) < (key($1), $1) }.prefix(c))
                let expected = (0..<n).map { chosen.contains($0) ? UInt8(3) : 0 }
                XCTAssertEqual(mask, expected, "middle-out select n=\(n) c=\(c) seed=\(seed)\(n <= 65 ? " v=\(v)" : "")")
            }
        }
    }
}
