import MBCore
import Foundation
import MBBinarize
import Testing

@Suite struct RefitTests {
    @Test func handCheckedLeastSquares() throws {
        // T = [4, 3, 1, 1], M = [2, 2, 2, 1]. Residual: mu1 = 9/4, s1 = [+,+,+,+],
        // E1 = [1.75, 0.75, -1.25, -1.25]; mu2 = (1.75 + 0.75 + 1.25) / 3 = 1.25, s2 = [+,+,-].
        // Normal equations: G = [[4, 1], [1, 3]] (s1.s2 over the 2-bit entries = 1 + 1 - 1),
        // h = [9, 4 + 3 - 1 = 6]  =>  mu1 = 21/11, mu2 = 15/11.
        // Squared error: 2.0625 before, 18/11 = 1.636... after.
        let t = FloatTensor(name: "t", values: [4, 3, 1, 1])
        let packed = try Binarizer.binarize(t, mask: [2, 2, 2, 1])
        #expect(packed.levels.map(\.scales) == [[2.25], [1.25]])
        let refit = try Refit.refit(packed, original: t)
        #expect(refit.singularGroups == 0)
        #expect(refit.packed.levels.map(\.scales) == [[Float(21.0 / 11)], [Float(15.0 / 11)]])
        #expect(refit.packed.mask == packed.mask && refit.packed.levels.map(\.signs) == packed.levels.map(\.signs))
        let before = Statistics(original: t.values, packed: packed).normalizedError
        let after = Statistics(original: t.values, packed: refit.packed).normalizedError
        #expect(abs(before * before * 27 - 2.0625) < 1e-9)  // ||T||^2 = 27
        #expect(abs(after * after * 27 - 18.0 / 11) < 1e-6)
    }

    @Test(arguments: [(tenths([7, 2, 1]), ScaleMode.tensor), (tenths([4, 3, 3]), .tensor), (try! BitDistribution.homogeneous(4), .tensor),
                      (tenths([6, 2, 2]), .channel(axis: 0))])
    func refitIsTheLeastSquaresOptimum(distribution: BitDistribution, scale: ScaleMode) throws {
        let t = normalTensor(8 * 1000, seed: 21, shape: [8, 1000])
        let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: distribution, scale: scale))
        let refit = try Refit.refit(packed, original: t).packed
        let before = Statistics(original: t.values, packed: packed).normalizedError
        let after = Statistics(original: t.values, packed: refit).normalizedError
        #expect(after <= before, "P \(distribution) \(scale): \(after) > \(before)")
        // At the optimum the error is orthogonal to every level's sign vector (per group).
        let reconstructed = refit.dequantized()
        let signs = refit.unpackedSigns()
        let groups = refit.groupCount
        let tolerance = 1e-4  // Float rounding of T_hat and of the scales, relative to sum |T|
        for k in 0..<refit.levels.count {
            for g in 0..<groups {
                let range = groups == 1 ? 0..<t.values.count : (g * 1000)..<((g + 1) * 1000)
                var dot = 0.0, norm = 0.0
                for j in range where signs[k][j] != 0 {
                    dot += Double(signs[k][j]) * (Double(t.values[j]) - Double(reconstructed[j]))
                    norm += abs(Double(t.values[j]))
                }
                #expect(abs(dot) <= tolerance * max(norm, 1), "P \(distribution) level \(k + 1) group \(g): <s, T - T_hat> = \(dot)")
            }
        }
    }

    @Test func singularSystemsKeepTheResidualScales() throws {
        // T = [3, 3, 3], 2 bits: E1 = 0, so s2 = s1 = + everywhere and G = [[3, 3], [3, 3]].
        let t = FloatTensor(name: "t", values: [3, 3, 3])
        let packed = try Binarizer.binarize(t, bits: 2)
        let refit = try Refit.refit(packed, original: t)
        #expect(refit.singularGroups == 1)
        #expect(refit.packed == packed)
    }
}

@Suite struct AverageSearchTests {
    @Test func gridForAverage1Point4() throws {
        // n1 + n2 + n3 = 20 and n1 + 2 n2 + 3 n3 = 28 (twentieths): n3 = 0...4.
        let grid = try AverageSearch.grid(average: 1.4, bits: [1, 2, 3])
        #expect(grid.map(\.description) == ["6/4/0", "0.65,0.3,0.05@1,2,3", "7/2/1", "0.75,0.1,0.15@1,2,3", "8/0/2"])
        #expect(grid.allSatisfy { abs($0.averageBits - 1.4) < 1e-12 })
        #expect(try AverageSearch.grid(average: 2, bits: [2]).map(\.description) == ["2-bit"])
        // 2n2 + 4n4 = 60 with n2 + n4 = 20: only 10/10.
        #expect(try AverageSearch.grid(average: 3, bits: [2, 4]).map(\.description) == ["0.5,0.5@2,4"])
    }

    @Test func offGridAndUnreachableAveragesAreRefused() {
        #expect(throws: BinarizeError.invalidConfiguration("average 1.42 is not on the 0.05 grid")) { _ = try AverageSearch.grid(average: 1.42, bits: [1, 2, 3]) }
        #expect(throws: BinarizeError.invalidConfiguration("no distribution over bit widths [2, 3] averages 1.5 bits")) { _ = try AverageSearch.grid(average: 1.5, bits: [2, 3]) }
        #expect(throws: BinarizeError.invalidConfiguration("allowed bit widths must be distinct, ascending and in 1...8, got [3, 1]")) { _ = try AverageSearch.grid(average: 2, bits: [3, 1]) }
    }

    @Test func searchKeepsTheLowestError() throws {
        let t = normalTensor(20_000, seed: 4)
        let result = try AverageSearch.search(t, average: 1.4)
        #expect(result.candidates.count == 5)
        for c in result.candidates {
            #expect(result.best.statistics.normalizedError <= c.statistics.normalizedError)
            let direct = try Binarizer.binarize(t, BinarizationConfig(distribution: c.distribution))
            #expect(c.statistics == Statistics(original: t.values, packed: direct), "\(c.distribution)")
            #expect(abs(c.statistics.averageBits - 1.4) < 1e-12, "\(c.distribution)")
        }
    }
}

@Suite struct StatisticsTests {
    @Test func storageCostCountsMaskAndScales() throws {
        // 7/2/1 on 100,000 values: exactly 70,000 / 20,000 / 10,000 entries, 140,000 sign bits,
        // a mask at H(0.7, 0.2, 0.1) = 1.1568 bits per entry, 3 Float32 scales.
        let t = normalTensor(100_000, seed: 8)
        let s = Statistics(original: t.values, packed: try Binarizer.binarize(t, BinarizationConfig(distribution: tenths([7, 2, 1]))))
        #expect(s.bitCounts == [70_000, 20_000, 10_000])
        #expect(s.fractions == [0.7, 0.2, 0.1])
        #expect(s.signBits == 140_000 && s.averageBits == 1.4)
        let h = -(0.7 * log2(0.7) + 0.2 * log2(0.2) + 0.1 * log2(0.1))
        #expect(abs(s.maskEntropy - h) < 1e-12 && abs(h - 1.15678) < 1e-5)
        #expect(s.scaleCount == 3)
        #expect(abs(s.storageBitsPerWeight - (1.4 + h + 96.0 / 100_000)) < 1e-12)
        #expect(abs(s.storageBitsPerWeight - 2.5577) < 1e-4)
    }

    @Test func errorMeasuresAgree() throws {
        let t = normalTensor(10_000, seed: 12)
        let packed = try Binarizer.binarize(t, bits: 2)
        let s = Statistics(original: t.values, packed: packed)
        let back = packed.dequantized()
        var num = 0.0, den = 0.0, worst = 0.0
        for (a, b) in zip(t.values, back) {
            num += (Double(a) - Double(b)) * (Double(a) - Double(b))
            den += Double(a) * Double(a)
            worst = max(worst, abs(Double(a) - Double(b)))
        }
        #expect(s.normalizedError == (num / den).squareRoot())
        #expect(abs(s.sqnrDB - (-20 * log10(s.normalizedError))) < 1e-9)
        #expect(s.maxAbsError == worst)
        #expect(s.maskEntropy == 0 && s.storageBitsPerWeight == 2 + 64.0 / 10_000)
    }
}
