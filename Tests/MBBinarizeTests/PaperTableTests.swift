import MBCore
import MBBinarize
import Testing

/// HBB.md section 4 (the paper's Figure 2a) on a smaller seeded tensor.
///
/// N = 200,000 instead of 1,000,000 keeps the test at a few seconds in a debug build. The
/// spread of the normalized error between seeds at this N is about 0.001 (measured over seeds
/// 0-4). Tolerances, each from what is measured at seed 0:
/// - homogeneous and Middle-Out (HBB.md gives three decimals): 0.002 = the seed spread twice
///   (rounding adds 0.0005); the largest measured Middle-Out difference is 0.0008.
/// - Random, Top-Down, Bottom-Up (values read off the paper's plot to two decimals): 0.007 =
///   rounding to two decimals (0.005) plus twice the seed spread; the largest measured
///   difference is 0.0053 (Random). Random and Top-Down differ by 0.01 or more in most rows, so
///   this tolerance, unlike the former 0.02, tells them apart; `methodsAreOrdered` checks the
///   ordering the plot shows directly.
@Suite struct PaperTableTests {
    static let n = 200_000
    static let tight = 0.002
    static let loose = 0.007

    static let homogeneous: [(bits: Int, error: Double)] = [(1, 0.603), (2, 0.361), (3, 0.242), (4, 0.182)]
    // mix in tenths, Random, Top-Down, Bottom-Up, Middle-Out
    static let mixes: [([Int], Double, Double, Double, Double)] = [
        ([9, 1, 0], 0.58, 0.56, 0.45, 0.451),
        ([9, 0, 1], 0.58, 0.56, 0.44, 0.442),
        ([7, 3, 0], 0.54, 0.50, 0.44, 0.349),
        ([7, 2, 1], 0.53, 0.50, 0.41, 0.327),
        ([5, 5, 0], 0.50, 0.50, 0.49, 0.289),
        ([6, 2, 2], 0.51, 0.49, 0.44, 0.288),
        ([5, 3, 2], 0.48, 0.49, 0.45, 0.261),
        ([4, 4, 2], 0.46, 0.50, 0.44, 0.240),
        ([4, 3, 3], 0.45, 0.50, 0.45, 0.251),
    ]

    @Test func homogeneousColumn() throws {
        let t = normalTensor(Self.n, seed: 0)
        for (bits, paper) in Self.homogeneous {
            let e = normalizedError(t, try Binarizer.binarize(t, bits: bits))
            #expect(abs(e - paper) <= Self.tight, "\(bits)-bit: got \(e), HBB.md \(paper), tolerance \(Self.tight), N \(Self.n) seed 0")
        }
    }

    @Test func heterogeneousColumns() throws {
        let t = normalTensor(Self.n, seed: 0)
        var worst: [String: Double] = [:]
        defer { print("paper table: largest |measured - HBB.md| per method: " + worst.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: ", ")) }
        for (parts, random, topDown, bottomUp, middleOut) in Self.mixes {
            for (method, paper, tolerance) in [(MaskMethod.middleOut, middleOut, Self.tight), (.random, random, Self.loose),
                                               (.topDown, topDown, Self.loose), (.bottomUp, bottomUp, Self.loose)] {
                let e = normalizedError(t, try Binarizer.binarize(t, BinarizationConfig(distribution: tenths(parts), method: method)))
                worst["\(method)"] = max(worst["\(method)"] ?? 0, abs(e - paper))
                #expect(abs(e - paper) <= tolerance,
                        "\(parts.map(String.init).joined(separator: "/")) \(method): got \(e), HBB.md \(paper), tolerance \(tolerance), N \(Self.n) seed 0")
            }
        }
    }

    /// The paper's ordering, independent of any plot reading: Middle-Out has the lowest error of
    /// the four in every row, and is strictly below Top-Down and Random by at least 0.05.
    @Test func methodsAreOrdered() throws {
        let t = normalTensor(Self.n, seed: 0)
        for (parts, _, _, _, _) in Self.mixes {
            func e(_ m: MaskMethod) throws -> Double { normalizedError(t, try Binarizer.binarize(t, BinarizationConfig(distribution: tenths(parts), method: m))) }
            let mo = try e(.middleOut), bu = try e(.bottomUp), td = try e(.topDown), r = try e(.random)
            let label = parts.map(String.init).joined(separator: "/")
            #expect(mo <= bu + 1e-9, "\(label): Middle-Out \(mo) vs Bottom-Up \(bu)")
            #expect(mo + 0.05 < td && mo + 0.05 < r, "\(label): Middle-Out \(mo), Top-Down \(td), Random \(r)")
        }
    }
}
