import MBCore
@testable import MBKernels
import CFloatKernels
import XCTest

/// The channel-vectorised convolution (`Conv+Channels.swift`, `fk_conv_channels`) against the
/// reference convolution (`Conv+Reference.swift`). Skipped without AVX-512 (the kernel exists
/// only there; `Conv` never picks it elsewhere).
final class ConvChannelsTests: XCTestCase {
    /// Output channels around the blocks (16/32/48 lanes, 4 vectors as 2 + 2, masked tails),
    /// output rows shorter and longer than the 8-pixel tile (7, 13, 14, 1), kernels 1×1 to 7×7,
    /// strides 1, 2 (specialised) and 3 (run-time), padding on some or all sides, dilations,
    /// groups, 1-D, batches, threads.
    static let geometries: [ConvGeometry] = {
        var list: [ConvGeometry] = []
        for m in [1, 15, 16, 17, 33, 48, 64, 65, 100] {
            list.append(ConvGeometry(batch: 1, inChannels: 5, outChannels: m, input: [7, 7], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1]))
        }
        for (side, k, stride, pad) in [(13, 1, 1, 0), (14, 3, 1, 1), (14, 1, 2, 0), (13, 5, 1, 2), (16, 7, 2, 3), (9, 3, 2, 0), (11, 3, 3, 1), (1, 1, 1, 0)] {
            list.append(ConvGeometry(batch: 1, inChannels: 6, outChannels: 40, input: [side, side + 2], kernel: [k, k], strides: [stride, stride],
                                     padBegin: [pad, pad], padEnd: [pad, pad]))
        }
        list += [
            ConvGeometry(batch: 1, inChannels: 4, outChannels: 20, input: [12, 20], kernel: [3, 5], strides: [1, 2], dilations: [2, 3],
                         padBegin: [2, 6], padEnd: [1, 5]),
            ConvGeometry(batch: 1, inChannels: 3, outChannels: 64, input: [30, 30], kernel: [7, 7], strides: [2, 2], padBegin: [3, 3], padEnd: [3, 3]),
            ConvGeometry(batch: 2, inChannels: 8, outChannels: 18, groups: 2, input: [10, 9], kernel: [3, 3], padBegin: [1, 0], padEnd: [0, 1]),
            ConvGeometry(batch: 1, inChannels: 7, outChannels: 24, input: [45], kernel: [5], strides: [2], padBegin: [2], padEnd: [1]),
            ConvGeometry(batch: 1, inChannels: 2, outChannels: 5, input: [4, 9], kernel: [3, 3], padBegin: [4, 0], padEnd: [4, 0]),
            ConvGeometry(batch: 1, inChannels: 70, outChannels: 96, input: [7, 7], kernel: [1, 1]),
        ]
        return list
    }()

    func testMatchesReference() throws {
        try XCTSkipIf(fk_has_avx512() == 0, "the channel-vectorised kernel needs AVX-512")
        let scratch = KernelScratch()
        for (index, g) in Self.geometries.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            XCTAssertTrue(Conv.channelsAvailable(g), "\(g)")
            let x = randomFloats(g.batch * g.inChannels * g.inputSize, seed: UInt64(5200 + index))
            let w = randomFloats(g.outChannels * g.inPerGroup * g.kernelSize, seed: UInt64(5300 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(5400 + index))
            let count = g.batch * g.outChannels * g.outputSize
            let packed = ConvChannelWeights()
            for (activation, withBias) in [(Conv.Activation.none, false), (.relu, true), (.hardSwish, true)] {
                var ref = [Float](repeating: .nan, count: count)
                Conv.forward(.reference, g, input: x, weights: w, bias: withBias ? b : nil, output: &ref, activation: activation)
                // Packed once and reused (the kept copy), and packed per call into scratch.
                for (threads, keep) in [(1, true), (2, true), (3, false)] {
                    var fast = [Float](repeating: .nan, count: count)
                    b.withUnsafeBufferPointer { bp in
                        Conv.forward(.fast, g, input: x, weights: w, bias: withBias ? bp.baseAddress : nil, output: &fast, activation: activation,
                                     threads: threads, scratch: scratch, implementation: .channels, packedWeights: keep ? packed : nil)
                    }
                    assertClose(fast, ref, terms: g.inPerGroup * g.kernelSize, "channels #\(index) \(g) \(activation) threads=\(threads)")
                }
            }
        }
    }

    /// The packed layout against its definition: blocks of 48 channels (16 or 32 where fewer
    /// are left, 64 as 32 + 32), `[k][block]` each, zero lanes past the last channel.
    func testPackingLayout() {
        for (m, k, widths) in [(1, 3, [16]), (48, 2, [48]), (64, 5, [32, 32]), (100, 3, [48, 32, 32]), (65, 2, [48, 32])] {
            let w = (0..<m * k).map { Float($0 + 1) }
            var packed = [Float](repeating: .nan, count: fk_conv_channels_packed_floats(m, k))
            fk_conv_channels_pack(w, m, k, &packed)
            var expected: [Float] = []
            var co0 = 0
            for width in widths {
                for p in 0..<k { for c in 0..<width { expected.append(co0 + c < m ? w[(co0 + c) * k + p] : 0) } }
                co0 += width
            }
            XCTAssertEqual(packed, expected, "m=\(m) k=\(k)")
        }
    }

    /// The kept copy follows the weights: other weights (a new pointer) are packed again.
    func testKeptCopyFollowsWeights() throws {
        try XCTSkipIf(fk_has_avx512() == 0, "the channel-vectorised kernel needs AVX-512")
        let g = ConvGeometry(batch: 1, inChannels: 3, outChannels: 20, input: [6, 6], kernel: [3, 3], padBegin: [1, 1], padEnd: [1, 1])
        let x = randomFloats(g.inChannels * g.inputSize, seed: 77)
        let packed = ConvChannelWeights()
        XCTAssertEqual(packed.residentBytes, 0)
        // Both alive at once, so the second cannot reuse the first one's address.
        let weights = [78, 79].map { randomFloats(g.outChannels * g.inPerGroup * g.kernelSize, seed: UInt64($0)) }
        for (seed, w) in weights.enumerated() {
            var ref = [Float](repeating: .nan, count: g.outChannels * g.outputSize), fast = ref
            Conv.forward(.reference, g, input: x, weights: w, bias: nil, output: &ref)
            Conv.forward(.fast, g, input: x, weights: w, bias: nil, output: &fast, implementation: .channels, packedWeights: packed)
            assertClose(fast, ref, terms: 27, "weights seed \(seed)")
        }
        XCTAssertEqual(packed.residentBytes, 32 * 27 * 4)
    }

    /// The measured choice (`Conv.prefersChannels`) on the shapes it was measured on.
    func testChoice() {
        let conv = { (c: Int, o: Int, side: Int, k: Int, stride: Int) in
            ConvGeometry(batch: 1, inChannels: c, outChannels: o, input: [side, side], kernel: [k, k], strides: [stride, stride],
                         padBegin: [k / 2, k / 2], padEnd: [k / 2, k / 2])
        }
        XCTAssertTrue(Conv.prefersChannels(conv(32, 32, 56, 3, 1)))       // ResNet 3×3
        XCTAssertTrue(Conv.prefersChannels(conv(256, 256, 7, 3, 1)))
        XCTAssertTrue(Conv.prefersChannels(conv(128, 128, 160, 3, 2)))    // YOLO stride 2
        XCTAssertTrue(Conv.prefersChannels(conv(128, 256, 56, 1, 2)))     // 1×1 stride 2
        XCTAssertTrue(Conv.prefersChannels(conv(1024, 256, 7, 1, 1)))     // long reduction, small plane
        XCTAssertTrue(Conv.prefersChannels(conv(64, 384, 2, 1, 1)))       // 4 pixels
        XCTAssertFalse(Conv.prefersChannels(conv(64, 256, 28, 1, 1)))     // short reduction: RowGemm's full strips
        XCTAssertFalse(Conv.prefersChannels(conv(96, 24, 8, 1, 1)))
        XCTAssertFalse(Conv.prefersChannels(conv(512, 512, 20, 1, 1)))    // 400 pixels
        XCTAssertFalse(Conv.prefersChannels(conv(3, 64, 224, 7, 2)))      // first layer
        XCTAssertFalse(Conv.prefersChannels(conv(24, 24, 74, 3, 1)))      // 24 channels in 32 lanes
        XCTAssertFalse(Conv.prefersChannels(conv(128, 1, 80, 1, 1)))      // a one-channel head
    }
}
