import MBBinarize
import MBCore
import Testing

/// The baseline quantizers (int-n per channel, k-means palettes): exact codes and values on
/// hand-checked tensors, and the properties every result must have.
@Suite struct QuantizerTests {
    @Test func linearCodesByHand() throws {
        // One group: range [-1, 2], 2 bits: s = 3/3 = 1, z = round(1/1) = 1.
        let t = try FloatTensor(name: "w", shape: [6], values: [-1, -0.5, 0, 0.25, 1, 2])
        let q = try LinearQuantizer.quantize(t, axis: nil, bits: 2, mse: false, half: false)
        #expect(q.values == [1] && q.zeroPoints == [1])
        // round(-0.5) = -0 (half to even), round(0.25) = 0.
        #expect(q.codes == [0, 1, 1, 1, 2, 3])
        #expect(q.dequantized() == [-1, 0, 0, 0, 1, 2])
        // Per channel (axis 0): [0, 3, 6] -> s = 2, z = 0, 3/2 = 1.5 rounds to 2;
        // [-3, -1, 0] -> s = 1, z = 3.
        let c = try FloatTensor(name: "w", shape: [2, 3], values: [0, 3, 6, -3, -1, 0])
        let qc = try LinearQuantizer.quantize(c, axis: 0, bits: 2, mse: false, half: false)
        #expect(qc.values == [2, 1] && qc.zeroPoints == [0, 3])
        #expect(qc.codes == [0, 2, 3, 0, 2, 3])
        #expect(qc.dequantized() == [0, 4, 6, -3, -1, 0])
        // Along the last axis of a [2, 2] tensor: channel j holds entries j and 2 + j:
        // [1, 3] -> s = 3/255, z = 0; [-1, 2] -> s = 3/255, z = round(85) = 85.
        let last = try FloatTensor(name: "w", shape: [2, 2], values: [1, -1, 3, 2])
        let ql = try LinearQuantizer.quantize(last, axis: 1, bits: 8, mse: false, half: false)
        #expect(ql.values == [Float(3) / 255, Float(3) / 255] && ql.zeroPoints == [0, 85])
        #expect(ql.codes == [85, 0, 255, 255])
    }

    @Test func mseClippingNeverLosesAndHelpsOutliers() throws {
        var g = SeededGenerator(seed: 7)
        for bits in [2, 3, 4] {
            // Normal weights with one large outlier per channel.
            var values = (0..<(8 * 64)).map { _ in Float(g.nextNormal()) }
            for c in 0..<8 { values[c * 64] = 12 }
            let t = try FloatTensor(name: "w", shape: [8, 64], values: values)
            let plain = try LinearQuantizer.quantize(t, axis: 0, bits: bits, mse: false, half: false)
            let clipped = try LinearQuantizer.quantize(t, axis: 0, bits: bits, mse: true, half: false)
            let e0 = Statistics.errors(original: values, reconstructed: plain.dequantized()).normalizedError
            let e1 = Statistics.errors(original: values, reconstructed: clipped.dequantized()).normalizedError
            #expect(e1 < e0, "\(bits) bits: clip mse \(e1) vs none \(e0)")
            #expect(clipped.codes.allSatisfy { Int($0) < 1 << bits })
        }
    }

    @Test func paletteByHand() throws {
        // Two clusters: quantile start at sorted[2] = 0 and sorted[6] = 10; Lloyd settles at
        // {-6, -4, 0, 1, 2} -> -1.4 and {9, 10, 11} -> 10.
        let t = try FloatTensor(name: "w", shape: [8], values: [0, 1, 2, 9, 10, 11, -6, -4])
        let q = try PaletteQuantizer.quantize(t, axis: nil, channelsPerGroup: 1, bits: 1, half: false)
        #expect(q.values == [Float(-1.4), 10])
        #expect(q.codes == [0, 0, 0, 1, 1, 1, 0, 0])
        // At most 2^n distinct values: stored exactly, the palette padded with the largest.
        let few = try FloatTensor(name: "w", shape: [5], values: [1, 1, 2, 2, 3])
        let qf = try PaletteQuantizer.quantize(few, axis: nil, channelsPerGroup: 1, bits: 2, half: false)
        #expect(qf.values == [1, 2, 3, 3] && qf.codes == [0, 0, 1, 1, 2])
        #expect(qf.dequantized() == few.values)
        // Groups of 2 output channels: rows 0-1 and rows 2 (a shorter last group).
        let grouped = try FloatTensor(name: "w", shape: [3, 2], values: [1, 2, 1, 2, 5, 7])
        let qg = try PaletteQuantizer.quantize(grouped, axis: 0, channelsPerGroup: 2, bits: 1, half: false)
        #expect(qg.groupCount == 2 && qg.values == [1, 2, 5, 7] && qg.codes == [0, 1, 0, 1, 0, 1])
    }

    @Test func paletteBeatsUniformSpacingOnNormalWeights() throws {
        let t = normalTensor(4096, seed: 3, shape: [16, 256])
        for bits in 1...4 {
            let palette = try PaletteQuantizer.quantize(t, axis: nil, channelsPerGroup: 1, bits: bits, half: false)
            let linear = try LinearQuantizer.quantize(t, axis: nil, bits: max(bits, 2), mse: true, half: false)
            let ep = Statistics.errors(original: t.values, reconstructed: palette.dequantized()).normalizedError
            let el = Statistics.errors(original: t.values, reconstructed: linear.dequantized()).normalizedError
            if bits >= 2 { #expect(ep <= el, "\(bits) bits: palette \(ep), int \(el)") }
            // Lloyd's optimum for a normal source: 1 bit 0.603, 2 bits 0.344, 3 bits 0.186, 4 bits 0.097 (±5 %).
            let optimum = [0.603, 0.344, 0.186, 0.097][bits - 1]
            #expect(abs(ep - optimum) / optimum < 0.05, "\(bits) bits: palette error \(ep), Lloyd-Max \(optimum)")
            #expect(palette.values == palette.values.sorted())
        }
    }

    @Test func halfValuesAreFloat16AndCodesFollowThem() throws {
        let t = normalTensor(600, seed: 11, shape: [6, 100])
        let q = try LinearQuantizer.quantize(t, axis: 0, bits: 3, mse: true, half: true)
        #expect(q.halfValues && q.values.allSatisfy { Float(float16Bits: $0.float16Bits) == $0 })
        try q.validate()
        let p = try PaletteQuantizer.quantize(t, axis: 0, channelsPerGroup: 3, bits: 2, half: true)
        #expect(p.halfValues && p.values.allSatisfy { Float(float16Bits: $0.float16Bits) == $0 })
        // Every code is the nearest stored palette value.
        let groups = QuantizedTensor.groupIndices(shape: t.shape, axis: 0, channelsPerGroup: 3)
        for (j, v) in t.values.enumerated() {
            let g = groups[j]
            let chosen = abs(p.value(code: p.codes[j], group: g) - v)
            let best = (0..<4).map { abs(p.value(code: UInt8($0), group: g) - v) }.min()!
            #expect(chosen == best, "entry \(j)")
        }
        // A scale float16 cannot hold keeps float32 for the tensor.
        let huge = try FloatTensor(name: "w", shape: [2], values: [-1e6, 1e6])
        #expect(try LinearQuantizer.quantize(huge, axis: nil, bits: 2, mse: false, half: true).halfValues == false)
    }

    @Test func nonFiniteWeightsAreRefused() throws {
        let t = try FloatTensor(name: "w", shape: [3], values: [1, .nan, 2])
        #expect(throws: BinarizeError.self) { try LinearQuantizer.quantize(t, axis: nil, bits: 4, mse: false, half: false) }
        #expect(throws: BinarizeError.self) { try PaletteQuantizer.quantize(t, axis: nil, channelsPerGroup: 1, bits: 2, half: false) }
    }
}
