import Foundation
import MBKernels
import MBCore
import XCTest

/// The SIMD elementwise kernels (every instruction set the CPU has: portable, AVX2, AVX-512)
/// against their Double references: dense sweeps for the exp-based functions with their stated
/// maximum errors, length sweeps with tails for every function, operation and operand form.
final class ElementwiseKernelTests: XCTestCase {
    var isas: [Int] { Array(0...Elementwise.isa) }

    /// The maximum errors stated in `Elementwise`'s documentation.
    func testExpBasedFunctionsStayWithinTheirStatedError() {
        let n = 400_001
        let xs = (0..<n).map { Float(-100 + 200 * Double($0) / Double(n - 1)) }
        var y = [Float](repeating: 0, count: n)
        let relative: [(Elementwise.Unary, Double)] = [(.activation(.sigmoid), 5e-7), (.activation(.tanh), 5e-7), (.exp, 5e-7), (.erf, 5e-7)]
        let scaled: [(Elementwise.Unary, Double)] = [(.activation(.silu), 2e-6), (.gelu, 2e-6), (.geluTanh, 2e-6),
                                                     (.activation(.sigmoid), 2e-6), (.activation(.tanh), 2e-6), (.erf, 2e-6)]
        for isa in isas {
            for (f, bound) in relative {
                Elementwise.unary(f, xs, &y, count: n, isa: isa)
                var worst = 0.0, at: Float = 0
                for i in 0..<n {
                    let r = Elementwise.reference(f, Double(xs[i]))
                    // Results below FLT_MIN are flushed; results above FLT_MAX are +inf in float.
                    guard abs(r) >= Double(Float.leastNormalMagnitude), abs(r) <= Double(Float.greatestFiniteMagnitude) else { continue }
                    let e = abs(Double(y[i]) - r) / abs(r)
                    if e > worst { worst = e; at = xs[i] }
                }
                print("elementwise \(f) isa \(isa): max relative error \(worst) at x = \(at)")
                XCTAssertLessThanOrEqual(worst, bound, "\(f) isa \(isa) at x = \(at)")
            }
            for (f, bound) in scaled {
                Elementwise.unary(f, xs, &y, count: n, isa: isa)
                var worst = 0.0, at: Float = 0
                for i in 0..<n {
                    let r = Elementwise.reference(f, Double(xs[i]))
                    let e = abs(Double(y[i]) - r) / max(1, abs(r))
                    if e > worst { worst = e; at = xs[i] }
                }
                print("elementwise \(f) isa \(isa): max error / max(1, |ref|) \(worst) at x = \(at)")
                XCTAssertLessThanOrEqual(worst, bound, "\(f) isa \(isa) at x = \(at)")
            }
        }
    }

    /// Every function on every length 0...70 (vector bodies and tails), in place and not, and
    /// special values: NaN stays NaN, infinities saturate.
    func testUnaryLengthSweepWithTails() {
        let functions: [Elementwise.Unary] = [.activation(.none), .activation(.relu), .activation(.clip(min: -0.5, max: 2)), .activation(.leakyRelu(alpha: 0.1)),
                                              .activation(.hardSigmoid(alpha: 0.2, beta: 0.5)), .activation(.hardSwish), .activation(.sigmoid),
                                              .activation(.silu), .activation(.tanh), .exp, .erf, .gelu, .geluTanh]
        var rng = SeededGenerator(seed: 41)
        for isa in isas {
            for f in functions {
                for n in 0...70 {
                    let x = (0..<n).map { _ in Float(rng.nextUnitDouble() * 16 - 8) }
                    var y = [Float](repeating: .nan, count: n + 1)
                    Elementwise.unary(f, x, &y, count: n, isa: isa)
                    var inPlace = x
                    inPlace.withUnsafeMutableBufferPointer { p in
                        if let b = p.baseAddress { Elementwise.unary(f, b, b, count: n, isa: isa) }
                    }
                    XCTAssertTrue(y[n].isNaN, "\(f) isa \(isa) n \(n) wrote past the end")
                    for i in 0..<n {
                        let r = Elementwise.reference(f, Double(x[i]))
                        XCTAssertLessThanOrEqual(abs(Double(y[i]) - r), 2e-6 * max(1, abs(r)), "\(f) isa \(isa) n \(n) x \(x[i])")
                        XCTAssertEqual(inPlace[i], y[i], "\(f) isa \(isa) in place differs at \(i)")
                    }
                }
            }
            var s: [Float] = [.nan, .infinity, -.infinity, 1000, -1000]
            var out = s
            Elementwise.unary(.activation(.sigmoid), s, &out, count: s.count, isa: isa)
            XCTAssertTrue(out[0].isNaN)
            XCTAssertEqual(Array(out[1...]), [1, 0, 1, 0])
            Elementwise.unary(.activation(.tanh), s, &out, count: s.count, isa: isa)
            XCTAssertTrue(out[0].isNaN)
            XCTAssertEqual(Array(out[1...]), [1, -1, 1, -1])
            Elementwise.unary(.exp, s, &out, count: s.count, isa: isa)
            XCTAssertTrue(out[0].isNaN)
            XCTAssertEqual(Array(out[1...]), [.infinity, 0, .infinity, 0])
            // Clip with min > max gives max (min(max(x, lo), hi)).
            Elementwise.unary(.activation(.clip(min: 2, max: 1)), [0, 5, 1.5], &out, count: 3, isa: isa)
            XCTAssertEqual(Array(out[0..<3]), [1, 1, 1])
            s = [.nan]
            Elementwise.unary(.activation(.silu), s, &out, count: 1, isa: isa)
            XCTAssertTrue(out[0].isNaN)
        }
    }

    /// Every binary operation with vector/scalar operands, fused activations, lengths 0...70,
    /// and the output written over a vector operand.
    func testBinaryOperandFormsAndTails() {
        var rng = SeededGenerator(seed: 42)
        let acts: [Activation] = [.none, .relu, .silu, .hardSwish, .clip(min: 0, max: 6)]
        for isa in isas {
            for op in Elementwise.BinaryOp.allCases {
                for act in acts {
                    for n in [0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 64, 70] {
                        for (sa, sb) in [(1, 1), (1, 0), (0, 1)] {
                            let a = (0..<max(n, 1)).map { _ in Float(rng.nextUnitDouble() * 8 - 4) }
                            let b = (0..<max(n, 1)).map { _ in Float(rng.nextUnitDouble() * 8 + 0.5) * (rng.nextUnitDouble() < 0.5 ? -1 : 1) }
                            var y = [Float](repeating: .nan, count: n + 1)
                            Elementwise.binary(op, a, aStride: sa, b, bStride: sb, &y, count: n, then: act, isa: isa)
                            XCTAssertTrue(y[n].isNaN)
                            for i in 0..<n {
                                let r = act.reference(Elementwise.reference(op, Double(a[i * sa]), Double(b[i * sb])))
                                XCTAssertLessThanOrEqual(abs(Double(y[i]) - r), 2e-6 * max(1, abs(r)), "\(op) \(act) isa \(isa) n \(n) strides \(sa),\(sb) at \(i)")
                            }
                            if sa == 1 {
                                var inPlace = a
                                inPlace.withUnsafeMutableBufferPointer { p in
                                    Elementwise.binary(op, p.baseAddress!, aStride: 1, b, bStride: sb, p.baseAddress!, count: n, then: act, isa: isa)
                                }
                                XCTAssertEqual(Array(inPlace[0..<n]), Array(y[0..<n]), "\(op) in place over a, isa \(isa) n \(n)")
                            }
                        }
                    }
                }
            }
            // Max and Min propagate NaN from either side.
            var y: [Float] = [0, 0]
            Elementwise.binary(.max, [Float.nan, 1], aStride: 1, [1, Float.nan], bStride: 1, &y, count: 2, isa: isa)
            XCTAssertTrue(y[0].isNaN && y[1].isNaN)
            Elementwise.binary(.min, [Float.nan, 1], aStride: 1, [1, Float.nan], bStride: 1, &y, count: 2, isa: isa)
            XCTAssertTrue(y[0].isNaN && y[1].isNaN)
        }
    }

    func testSoftmaxRowsAgainstReference() {
        var rng = SeededGenerator(seed: 43)
        for isa in isas {
            for n in 1...70 {
                let rows = 3
                let x = (0..<(rows * n)).map { _ in Float(rng.nextUnitDouble() * 40 - 20) }
                var y = [Float](repeating: 0, count: rows * n)
                Elementwise.softmaxRows(x, &y, rows: rows, n: n, isa: isa)
                for r in 0..<rows {
                    let ref = Elementwise.referenceSoftmax(Array(x[(r * n)..<((r + 1) * n)]))
                    for k in 0..<n { XCTAssertLessThanOrEqual(abs(Double(y[r * n + k]) - ref[k]), 1e-6, "isa \(isa) n \(n) row \(r) k \(k)") }
                }
            }
        }
    }

    /// `Activation.apply` (the SIMD kernels) agrees with `applyReference` (the plain loop).
    func testActivationApplyMatchesReference() {
        var rng = SeededGenerator(seed: 44)
        let acts: [Activation] = [.relu, .clip(min: 0, max: 6), .leakyRelu(alpha: 0.2), .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSwish, .sigmoid, .silu, .tanh]
        for act in acts {
            for n in [1, 5, 16, 37, 1000] {
                let x = (0..<n).map { _ in Float(rng.nextUnitDouble() * 20 - 10) }
                var fast = x, ref = x
                fast.withUnsafeMutableBufferPointer { act.apply(to: $0.baseAddress!, count: n) }
                ref.withUnsafeMutableBufferPointer { act.applyReference(to: $0.baseAddress!, count: n) }
                for i in 0..<n { XCTAssertLessThanOrEqual(abs(fast[i] - ref[i]), 2e-6 * max(1, abs(ref[i])), "\(act) n \(n) x \(x[i])") }
            }
        }
    }
}
