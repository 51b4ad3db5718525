import Foundation
import MBBinarize
import MBConvert
import MBCore
import MBFormat
import TestSupport
import Testing

/// Stored sizes with everything counted: what a binarized tensor occupies in an .mbm payload.
@Suite struct StoredSizeTests {
    /// Writes one packed tensor into an .mbm and returns its payload bytes as the reader sees them.
    func storedBytes(_ packed: PackedTensor, shape: [Int]) throws -> (payload: Int, mask: Int) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbm-size-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var g = IRGraph(name: "size")
        g.inputs = [IRValueInfo(name: "x", elementType: .float, shape: nil)]
        g.outputs = [IRValueInfo(name: "y", elementType: .float, shape: nil)]
        g.constants = [IRTensor(name: "w", elementType: .float, shape: shape, storage: .binarized(packed))]
        g.nodes = [IRNode(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])]
        let path = dir.appendingPathComponent("w.mbm").path
        _ = try MBMWriter().write(model: IRModel(graph: g, opsets: [IROpset(domain: "", version: 13)]), metadata: [], to: path)
        let file = try MBMFile.open(path: path)
        guard case .binarized(let back) = file.tensors[0].payload else { throw BinarizeError.invalidPacked("not binarized") }
        #expect(back == packed)
        return (file.tensors[0].storedBytes, file.tensors[0].maskBytes)
    }

    func normalTensor(_ n: Int, seed: UInt64) throws -> FloatTensor {
        var rng = SeededGenerator(seed: seed)
        return try FloatTensor(name: "w", shape: [n / 1000, 1000], values: (0..<n).map { _ in Float(rng.nextNormal()) })
    }

    /// 7/2/1 Middle-Out on 1M normal weights: at most B + H(P) + 0.001 bits per weight, all
    /// counted. Measured overhead 0.0002 bit/weight (the rANS state flush, 15-bit frequencies,
    /// 3 scales, padding); 0.001 leaves five times that before a regression fails.
    @Test func heterogeneous721CostsAtMostBPlusEntropy() throws {
        let n = 1_000_000
        let t = try normalTensor(n, seed: 721)
        let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: try .tenths([7, 2, 1])))
        let (bytes, mask) = try storedBytes(packed, shape: t.shape)
        let bitsPerWeight = Double(bytes * 8) / Double(n)
        let b = 1.4
        let h = -(0.7 * log2(0.7) + 0.2 * log2(0.2) + 0.1 * log2(0.1))
        #expect(bitsPerWeight <= b + h + 0.001, "stored \(bitsPerWeight) bits/weight; B + H(P) = \(b + h)")
        #expect(bitsPerWeight >= b + h - 0.001, "\(bitsPerWeight) is below the entropy bound \(b + h)")
        print(String(format: "7/2/1 on 1M weights: %.4f bits/weight stored (B + H(P) = %.4f; mask %.4f bits/weight)",
                     bitsPerWeight, b + h, Double(mask * 8) / Double(n)))
    }

    @Test(arguments: [1, 2, 3, 4, 8])
    func homogeneousCostsAtMostNPlusAThousandth(bits: Int) throws {
        let n = 1_000_000
        let t = try normalTensor(n, seed: UInt64(bits))
        let packed = try Binarizer.binarize(t, bits: bits)
        let (bytes, mask) = try storedBytes(packed, shape: t.shape)
        #expect(mask == 0)
        let bitsPerWeight = Double(bytes * 8) / Double(n)
        // The only overhead is one float32 scale per level and padding: under 0.0001 bit/weight
        // at 1M weights; 0.001 leaves ten times that.
        #expect(bitsPerWeight <= Double(bits) + 0.001, "\(bits)-bit: \(bitsPerWeight) bits/weight")
    }

    /// Channel scales cost 32 bits per level per output channel, and that is all they add.
    @Test func channelScalesAddExactlyTheirFloats() throws {
        let t = try normalTensor(64_000, seed: 9)
        let tensorScale = try Binarizer.binarize(t, bits: 2)
        let channelScale = try Binarizer.binarize(t, bits: 2, scale: .channel(axis: 0))
        let a = try storedBytes(tensorScale, shape: t.shape).payload
        let b = try storedBytes(channelScale, shape: t.shape).payload
        // 2 levels × (64 - 1) more scales of 4 bytes, payload padded to 8 bytes after the scales.
        #expect(b - a == 2 * 63 * 4)
    }

    /// A group:16 mask of a MatMul weight [K, N] is stored one width per group (mask coding 2):
    /// as the prediction says, H(P) bits per group plus the rANS state, not H(P) per entry.
    @Test func structuredMaskCostsItsGroupsAsPredicted() throws {
        let (k, n) = (256, 64)
        var rng = SeededGenerator(seed: 16)
        let t = try FloatTensor(name: "w", shape: [k, n], values: (0..<(k * n)).map { _ in Float(rng.nextNormal()) })
        let mix = BitDistribution([(2, 0.5), (3, 0.5)])!
        let groups = MaskGroups.weight(rows: n, taps: 1, channels: k, rowStride: 1, tapStride: 0, channelStride: n, granularity: .group(16))!
        #expect(groups.count == 1024)
        let packed = try Binarizer.binarize(t, BinarizationConfig(distribution: mix), groups: groups)
        let (_, mask) = try storedBytes(packed, shape: t.shape)
        let predicted = StoragePrediction.binarized(mix, elements: k * n, groups: 1, maskSymbols: groups.count)
        // 1024 widths at 1 bit each: 128 bytes, plus the 4-byte rANS state.
        #expect(abs(predicted.maskBits - 1024) < 1e-9)
        #expect(mask == 132, "stored mask \(mask) bytes")
        let perEntry = StoragePrediction.binarized(mix, elements: k * n, groups: 1)
        #expect(abs(perEntry.maskBits - Double(k * n)) < 1e-9)
    }
}
