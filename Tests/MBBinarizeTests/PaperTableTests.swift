import MBCore
import MBBinarize
import Testing

/// HBB.md section 4 (the paper's Figure 2a) on a smaller seeded tensor.
///
/// N = 200,000 instead of 1,000,000 keeps the test at a few seconds in a debug build. The
/// spread of the normalized error between seeds at this N is about 0.001 (measured over seeds
/// 0-4), so the homogeneous and Middle-Out columns keep HBB.md's tolerance of 0.005 and the
/// other heuristics (whose paper values are read off a plot to two decimals) 0.02.
@Suite struct PaperTableTests {
    static let n = 200_000
    static let tight = 0.005
    static let loose = 0.02

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
        for (parts, random, topDown, bottomUp, middleOut) in Self.mixes {
            for (method, paper, tolerance) in [(MaskMethod.middleOut, middleOut, Self.tight), (.random, random, Self.loose),
                                               (.topDown, topDown, Self.loose), (.bottomUp, bottomUp, Self.loose)] {
                let e = normalizedError(t, try Binarizer.binarize(t, BinarizationConfig(distribution: tenths(parts), method: method)))
                #expect(abs(e - paper) <= tolerance,
                        "\(parts.map(String.init).joined(separator: "/")) \(method): got \(e), HBB.md \(paper), tolerance \(tolerance), N \(Self.n) seed 0")
            }
        }
    }
}
