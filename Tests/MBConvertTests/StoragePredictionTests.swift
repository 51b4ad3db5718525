import MBBinarize
import MBConvert
import MBCore
import Testing

/// Predicted sizes count exactly what HBB.md section 6 counts, and agree with what MBBinarize
/// really produces (sign bits, realized widths, scales).
@Suite struct StoragePredictionTests {
    static let mix721 = BitDistribution([(1, 0.7), (2, 0.2), (3, 0.1)])!

    @Test func heterogeneousTensorScale() {
        let p = StoragePrediction.binarized(Self.mix721, elements: 1000, groups: 1)
        #expect(p.signBits == 700 + 2 * 200 + 3 * 100)
        #expect(abs(p.maskBits - 1000 * 1.1567796494470395) < 1e-9)
        #expect(p.scaleCount == 3)
        #expect(abs(p.bitsPerWeight - (1400 + 1156.7796494470395 + 96) / 1000) < 1e-12)
        #expect(p.bytes == Int(((1400 + 1156.7796494470395 + 96) / 8).rounded(.up)))
        #expect(abs(p.averageBits - 1.4) < 1e-12)
    }

    @Test func homogeneousHasNoMask() throws {
        let p = StoragePrediction.binarized(try .homogeneous(2), elements: 4096, groups: 64)
        #expect(p.signBits == 8192 && p.maskBits == 0 && p.scaleCount == 128)
        #expect(p.bitsPerWeight == (8192.0 + 128 * 32) / 4096)
    }

    /// An empty weight predicts nothing stored (it once recursed forever), and groups that do
    /// not divide the tensor fall back to one group.
    @Test func emptyAndIndivisibleTensors() {
        let empty = StoragePrediction.binarized(Self.mix721, elements: 0, groups: 4)
        #expect(empty.signBits == 0 && empty.scaleCount == 0 && empty.bytes == 0)
        let odd = StoragePrediction.binarized(Self.mix721, elements: 1000, groups: 3)
        #expect(odd.scaleCount == StoragePrediction.binarized(Self.mix721, elements: 1000, groups: 1).scaleCount)
    }

    @Test func keptTensors() {
        #expect(StoragePrediction.keep(.float, elements: 10).bitsPerWeight == 32)
        #expect(StoragePrediction.keep(.float16, elements: 10).bytes == 20)
        #expect(StoragePrediction.keep(.float16, elements: 10).averageBits == 0)
    }

    /// With channel scales each channel gets P on its own: rounding per channel, and a level
    /// whose active set is empty in a channel stores no scale there.
    @Test func perChannelRoundingMatchesMBBinarize() throws {
        var rng = SeededGenerator(seed: 42)
        for (channels, perChannel) in [(4, 9), (16, 5), (3, 1000), (7, 1)] {
            let n = channels * perChannel
            let t = try FloatTensor(name: "w", shape: [channels, perChannel], values: (0..<n).map { _ in Float(rng.nextNormal()) })
            let config = BinarizationConfig(distribution: try BitDistribution(bits: [1, 2, 3], fractions: [0.7, 0.2, 0.1]), scale: .channel(axis: 0))
            let stats = Statistics(original: t.values, packed: try Binarizer.binarize(t, config))
            let p = StoragePrediction.binarized(Self.mix721, elements: n, groups: channels)
            #expect(p.signBits == stats.signBits, "channels \(channels) x \(perChannel)")
            #expect(p.scaleCount == stats.scaleCount, "channels \(channels) x \(perChannel)")
            #expect(abs(p.maskBits - stats.maskBits) < 1e-6, "channels \(channels) x \(perChannel)")
        }
    }

    @Test func averageSearchGrid() throws {
        #expect(AverageBitsSearch.bitwidths(average: 1.4, maxBits: 8) == [1, 2, 3])
        #expect(AverageBitsSearch.bitwidths(average: 4.5, maxBits: 8) == [3, 4, 5])
        #expect(AverageBitsSearch.bitwidths(average: 2.5, maxBits: 3) == [1, 2, 3])
        #expect(AverageBitsSearch.bitwidths(average: 1.5, maxBits: 2) == [1, 2])
        // Every candidate has the asked average, and they are all the grid points with it.
        let c = AverageBitsSearch.candidates(average: 1.4, widths: [1, 2, 3])
        #expect(c.count == 5)
        #expect(c.allSatisfy { abs($0.averageBits - 1.4) < 1e-9 })
        #expect(c.contains(Self.mix721))
        #expect(try AverageBitsSearch.candidates(average: 1, widths: [1, 2, 3]) == [.homogeneous(1)])
    }

    /// The converter's sampled search and MBBinarize's AverageSearch share one grid: on-grid
    /// averages give the same candidates in the same order (zero fractions dropped), and the
    /// enumeration itself is pinned (3 widths, 2 units: 6 splits in order).
    @Test func sampledSearchWalksMBBinarizesGrid() throws {
        #expect(AverageSearch.gridCounts(widths: 3, units: 2) == [[0, 0, 2], [0, 1, 1], [0, 2, 0], [1, 0, 1], [1, 1, 0], [2, 0, 0]])
        for (average, widths) in [(1.4, [1, 2, 3]), (2.5, [1, 2, 3]), (3.7, [2, 3, 4]), (6.0, [5, 6, 7])] {
            let ours = AverageBitsSearch.candidates(average: average, widths: widths).map(\.description)
            let theirs = try AverageSearch.grid(average: average, bits: widths).map { d in
                BitDistribution(d.entries.filter { $0.fraction > 0 }.map { ($0.bits, $0.fraction) })!.description
            }
            #expect(ours == theirs, "average \(average) over \(widths)")
        }
    }

    /// On standard-normal data the search never does worse than the paper's 7/2/1 at 1.4 bits.
    @Test func averageSearchBeatsOrMatchesThePapersMix() throws {
        var rng = SeededGenerator(seed: 7)
        let t = FloatTensor(name: "n", values: (0..<8192).map { _ in Float(rng.nextNormal()) })
        let best = try AverageBitsSearch.best(average: 1.4, maxBits: 3, sample: t, method: .middleOut)
        let paper = try AverageBitsSearch.error(of: Self.mix721, on: t, method: .middleOut)
        #expect(best.normalizedError <= paper + 1e-12)
        #expect(abs(best.mix.averageBits - 1.4) < 1e-9)
        // A constant tensor is exact at any P.
        #expect(try AverageBitsSearch.error(of: Self.mix721, on: FloatTensor(name: "c", values: [0.5, 0.5, 0.5]), method: .middleOut) == 0)
    }
}
