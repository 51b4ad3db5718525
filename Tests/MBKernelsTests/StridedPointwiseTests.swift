import MBCore
import MBKernels
import XCTest

/// Strided 1×1 convolutions through `Conv.forward`'s automatic choice (subsampled, then the
/// pointwise path on AVX-512 CPUs) against the reference: strides 2 and 3, unequal strides,
/// odd sizes (a last row and column the stride still keeps), 1-D, batches, 1-3 threads.
final class StridedPointwiseTests: XCTestCase {
    func testStridedPointwiseMatchesReference() {
        let geometries: [ConvGeometry] = [
            ConvGeometry(batch: 1, inChannels: 128, outChannels: 40, input: [14, 14], kernel: [1, 1], strides: [2, 2]),
            ConvGeometry(batch: 1, inChannels: 9, outChannels: 7, input: [11, 13], kernel: [1, 1], strides: [2, 2]),
            ConvGeometry(batch: 2, inChannels: 17, outChannels: 33, input: [9, 10], kernel: [1, 1], strides: [3, 2]),
            ConvGeometry(batch: 6, inChannels: 8, outChannels: 5, input: [7, 7], kernel: [1, 1], strides: [2, 2]),
            ConvGeometry(batch: 1, inChannels: 16, outChannels: 24, input: [37], kernel: [1], strides: [2]),
            ConvGeometry(batch: 1, inChannels: 64, outChannels: 96, input: [40, 40], kernel: [1, 1], strides: [1, 2]),
        ]
        let scratch = KernelScratch()
        for (index, g) in geometries.enumerated() {
            XCTAssertNil(g.problem, "\(g)")
            XCTAssertTrue(Conv.isStridedPointwise(g), "\(g)")
            let x = randomFloats(g.batch * g.inChannels * g.inputSize, seed: UInt64(2200 + index))
            let w = randomFloats(g.outChannels * g.inPerGroup, seed: UInt64(2300 + index))
            let b = randomFloats(g.outChannels, seed: UInt64(2400 + index))
            let count = g.batch * g.outChannels * g.outputSize
            for activation in [Activation.relu, .silu] {
                var ref = [Float](repeating: .nan, count: count)
                Conv.forward(.reference, g, input: x, weights: w, bias: b, output: &ref, activation: activation)
                for threads in [1, 2, 3] {
                    var fast = [Float](repeating: .nan, count: count)
                    Conv.forward(.fast, g, input: x, weights: w, bias: b, output: &fast, activation: activation, threads: threads, scratch: scratch)
                    assertClose(fast, ref, terms: g.inPerGroup, "conv #\(index) \(g) \(activation) threads=\(threads)")
                }
            }
        }
        XCTAssertFalse(Conv.isStridedPointwise(ConvGeometry(batch: 1, inChannels: 8, outChannels: 8, input: [9, 9], kernel: [1, 1])))
        XCTAssertFalse(Conv.isStridedPointwise(ConvGeometry(batch: 1, inChannels: 8, outChannels: 8, input: [9, 9], kernel: [1, 1], strides: [2, 2],
                                                            padBegin: [1, 1], padEnd: [0, 0])))
    }
}
