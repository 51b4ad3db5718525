import MBBinarize
import MBCore
import MBKernels
import Testing

/// `method: saliency` (SaliencyMask): the fast selection against its plain twin (the same mask,
/// entry for entry), P's group counts exactly as Middle-Out's, determinism, and that the output
/// saliency, not the weights' magnitudes, decides.
@Suite(.serialized) struct SaliencyMaskTests {
    struct Case: CustomStringConvertible, Sendable {
        var mix: BitDistribution
        var scale: ScaleMode
        var granularity: MaskGranularity
        /// Input channels and kernel taps per convolution group (columns = channels · taps).
        var channels: Int
        var taps: Int
        var outputs: Int
        var convGroups: Int
        var rows: Int
        var seed: UInt64
        var description: String {
            "mix \(mix) scale \(scale) \(granularity) channels \(channels) taps \(taps) outputs \(outputs) groups \(convGroups) rows \(rows) seed \(seed)"
        }
    }

    static let cases: [Case] = [
        Case(mix: tenths([7, 2, 1]), scale: .tensor, granularity: .group(4), channels: 12, taps: 3, outputs: 10, convGroups: 1, rows: 80, seed: 1),
        Case(mix: tenths([5, 5]), scale: .channel(axis: 0), granularity: .group(2), channels: 6, taps: 2, outputs: 8, convGroups: 2, rows: 60, seed: 2),
        Case(mix: tenths([6, 3, 1]), scale: .tensor, granularity: .channel, channels: 8, taps: 1, outputs: 20, convGroups: 1, rows: 50, seed: 3),
        Case(mix: tenths([0, 7, 3]), scale: .channel(axis: 0), granularity: .group(16), channels: 40, taps: 1, outputs: 6, convGroups: 1, rows: 90, seed: 4),
        // Depthwise: one input channel per group, so each group is one entry (OBQ's e²/[H⁻¹]_jj).
        Case(mix: tenths([7, 2, 1]), scale: .tensor, granularity: .group(4), channels: 1, taps: 9, outputs: 12, convGroups: 12, rows: 40, seed: 5),
        // Fewer rows than columns: the rows route (Woodbury) for the blocks and for whole rows.
        Case(mix: tenths([7, 3]), scale: .tensor, granularity: .group(8), channels: 64, taps: 1, outputs: 9, convGroups: 1, rows: 24, seed: 6),
        Case(mix: tenths([5, 3, 2]), scale: .channel(axis: 0), granularity: .channel, channels: 48, taps: 1, outputs: 12, convGroups: 1, rows: 20, seed: 7),
    ]

    struct Prepared {
        var layer: OutputFitTests.Layer
        var system: OutputFit.System
        var target: [Float]
        var groups: MaskGroups
        var layout: GroupLayout
    }

    static func prepare(_ c: Case) throws -> Prepared {
        let d = c.channels * c.taps
        let layer = OutputFitTests.layer(rows: c.rows, outputs: c.outputs, columns: d, groups: c.convGroups, noise: 0.3, seed: c.seed)
        var inputs = layer.inputs(keepingRows: c.rows < d)
        inputs.sampleRows = c.rows
        let system = try OutputFit.system(inputs, geometry: layer.geometry, variant: .reference)
        let target = OutputFit.target(weights: layer.weights, inputs: inputs, system: system, geometry: layer.geometry, variant: .reference)
        // A Conv weight [outputs, channels, taps]: column = channel · taps + tap.
        let groups = MaskGroups.weight(rows: c.outputs, taps: c.taps, channels: c.channels, rowStride: d, tapStride: 1, channelStride: c.taps,
                                       granularity: c.granularity)!
        let layout = try GroupLayout(shape: layer.shape, scale: c.scale)
        return Prepared(layer: layer, system: system, target: target, groups: groups, layout: layout)
    }

    static func mask(_ p: Prepared, _ c: Case, _ variant: KernelVariant) throws -> [UInt8] {
        let e = c.mix.entries
        return try SaliencyMask.select(target: p.target, layout: p.layout, groups: p.groups, wholeTensor: c.granularity == .channel,
                                       bits: e.map(\.bits), fractions: e.map(\.fraction), system: p.system, geometry: p.layer.geometry,
                                       variant: variant)
    }

    /// Per domain (output slice with channel scales, else the tensor; the tensor for `channel`
    /// granularity), how many groups have each width; fails if a group's entries differ.
    static func groupCounts(_ mask: [UInt8], _ p: Prepared, _ c: Case) -> [Int: [UInt8: Int]] {
        var width = [Int: UInt8](), domain = [Int: Int]()
        for j in mask.indices {
            let g = Int(p.groups.ids[j])
            if let w = width[g] { #expect(w == mask[j], "group \(g) mixes widths \(w) and \(mask[j]) (\(c))") } else { width[g] = mask[j] }
            let slice = c.granularity == .channel || p.layout.groupCount <= 1 ? 0 : j / p.layout.groupSize
            if domain[g] == nil { domain[g] = slice }
        }
        var out: [Int: [UInt8: Int]] = [:]
        for (g, w) in width { out[domain[g]!, default: [:]][w, default: 0] += 1 }
        return out
    }

    @Test(arguments: cases)
    func fastEqualsReference(_ c: Case) throws {
        let p = try Self.prepare(c)
        let fast = try Self.mask(p, c, .fast)
        let reference = try Self.mask(p, c, .reference)
        let differing = zip(fast, reference).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        #expect(differing.isEmpty, "entries \(differing.prefix(10)) differ: fast \(differing.prefix(10).map { fast[$0] }) reference \(differing.prefix(10).map { reference[$0] }) (\(c))")
        #expect(try Self.mask(p, c, .fast) == fast, "a second run differs (\(c))")
    }

    /// Exactly Middle-Out's number of groups per width in every domain.
    @Test(arguments: cases)
    func countsAreMiddleOuts(_ c: Case) throws {
        let p = try Self.prepare(c)
        let saliency = try Self.mask(p, c, .fast)
        let config = BinarizationConfig(distribution: c.mix, method: .middleOut, scale: c.scale)
        let middleOut = try Binarizer.binarize(FloatTensor(name: "w", shape: p.layer.shape, values: p.target), config, groups: p.groups,
                                               wholeTensor: c.granularity == .channel).mask
        #expect(Self.groupCounts(saliency, p, c) == Self.groupCounts(middleOut, p, c), "(\(c))")
        #expect(saliency != middleOut, "the same mask as Middle-Out (\(c))")
    }

    /// Inputs 100 times larger on the first half of the columns: in every output channel the
    /// group on those columns keeps the wider width.
    @Test func theLoudColumnsKeepTheBits() throws {
        var rng = SeededGenerator(seed: 11)
        let d = 8, o = 16, n = 64
        let geometry = OutputFit.Geometry(rows: o, columns: d, rowStride: d, columnStride: 1)
        var x = [Double](repeating: 0, count: n * d)
        for i in 0..<n { for c in 0..<d { x[i * d + c] = Double(Float(rng.nextNormal() * (c < d / 2 ? 100 : 1))) } }
        var moments = OutputFit.Moments(groups: 1, columns: d)
        SymmetricMatrix.accumulateTransposeProduct(.reference, a: x, b: x, rows: n, n: d, m: d, into: &moments.quantized[0])
        moments.sampleRows = n
        let system = try OutputFit.system(moments, geometry: geometry, variant: .reference)
        // Both halves of a row hold the same magnitudes (random signs), spread so that a second
        // level lowers their error: only the inputs tell the halves apart.
        let magnitudes: [Float] = [0.1, 2.0, 0.5, 1.3]
        let weights = (0..<(o * d)).map { j in magnitudes[j % 4] * (rng.nextNormal() < 0 ? -1 : 1) }
        let groups = MaskGroups.weight(rows: o, taps: 1, channels: d, rowStride: d, tapStride: 1, channelStride: 1, granularity: .group(d / 2))!
        let mask = try SaliencyMask.select(target: weights, layout: try GroupLayout(shape: [o, d], scale: .channel(axis: 0)), groups: groups,
                                           wholeTensor: false, bits: [1, 2], fractions: [0.5, 0.5], system: system, geometry: geometry)
        for r in 0..<o {
            #expect(mask[(r * d)..<(r * d + d / 2)].allSatisfy { $0 == 2 } && mask[(r * d + d / 2)..<(r * d + d)].allSatisfy { $0 == 1 },
                    "row \(r): \(Array(mask[(r * d)..<(r * d + d)])) weights \(Array(weights[(r * d)..<(r * d + d)]))")
        }
    }

    /// What verify checks of a stored structured mask: Middle-Out's and saliency's pass; a group
    /// with two widths, or one group moved to another width, is named.
    @Test(arguments: cases)
    func structuredMaskCheck(_ c: Case) throws {
        let p = try Self.prepare(c)
        let e = c.mix.entries, whole = c.granularity == .channel
        func problem(_ mask: [UInt8]) -> String? {
            Binarizer.structuredMaskProblem(mask, layout: p.layout, groups: p.groups, wholeTensor: whole, bits: e.map(\.bits), fractions: e.map(\.fraction))
        }
        let saliency = try Self.mask(p, c, .fast)
        #expect(problem(saliency) == nil, "(\(c))")
        let config = BinarizationConfig(distribution: c.mix, method: .middleOut, scale: c.scale)
        let middleOut = try Binarizer.binarize(FloatTensor(name: "w", shape: p.layer.shape, values: p.target), config, groups: p.groups, wholeTensor: whole).mask
        #expect(problem(middleOut) == nil, "(\(c))")
        let widest = UInt8(e.filter { $0.fraction > 0 }.last!.bits)
        // Group 0 moved to another width: the counts no longer match P.
        var moved = saliency
        let other: UInt8 = saliency[0] == widest ? UInt8(e.first { $0.fraction > 0 }!.bits) : widest
        for j in moved.indices where p.groups.ids[j] == 0 { moved[j] = other }
        #expect(problem(moved) != nil, "(\(c))")
        if let j = p.groups.ids.indices.dropFirst().first(where: { p.groups.ids[$0] == 0 }) {
            var split = saliency
            split[j] = split[j] == widest ? other : widest
            #expect(problem(split)?.contains("mixes bit widths") == true, "(\(c))")
        }
    }

    /// A Gemm/MatMul weight stored [K, N] (outputs along axis 1, entry (r, c) at c·N + r), with
    /// channel scales on axis 1: the same layer as rows, so the same choice, transposed.
    @Test(arguments: [MaskGranularity.group(4), .channel])
    func outputsAlongTheSecondAxis(_ granularity: MaskGranularity) throws {
        let c = Case(mix: tenths([6, 3, 1]), scale: .channel(axis: 0), granularity: granularity, channels: 24, taps: 1, outputs: 10,
                     convGroups: 1, rows: 70, seed: 9)
        let p = try Self.prepare(c)
        let rowsMask = try Self.mask(p, c, .fast)
        let k = c.channels, n = c.outputs
        var target = [Float](repeating: 0, count: k * n)
        for r in 0..<n { for j in 0..<k { target[j * n + r] = p.target[r * k + j] } }
        let geometry = OutputFit.Geometry(rows: n, columns: k, rowStride: 1, columnStride: n)
        let groups = MaskGroups.weight(rows: n, taps: 1, channels: k, rowStride: 1, tapStride: 0, channelStride: n, granularity: granularity)!
        let layout = try GroupLayout(shape: [k, n], scale: .channel(axis: 1))
        let e = c.mix.entries
        func select(_ variant: KernelVariant) throws -> [UInt8] {
            try SaliencyMask.select(target: target, layout: layout, groups: groups, wholeTensor: granularity == .channel, bits: e.map(\.bits),
                                    fractions: e.map(\.fraction), system: p.system, geometry: geometry, variant: variant)
        }
        let fast = try select(.fast)
        #expect(try select(.reference) == fast)
        var transposed = [UInt8](repeating: 0, count: k * n)
        for r in 0..<n { for j in 0..<k { transposed[j * n + r] = rowsMask[r * k + j] } }
        #expect(fast == transposed, "\(fast) vs \(transposed)")
        #expect(Binarizer.structuredMaskProblem(fast, layout: layout, groups: groups, wholeTensor: granularity == .channel,
                                                bits: e.map(\.bits), fractions: e.map(\.fraction)) == nil)
    }

    @Test func aGroupAcrossOutputChannelsIsRefused() throws {
        let c = Self.cases[0]
        let p = try Self.prepare(c)
        var groups = p.groups
        groups.ids[0] = groups.ids[p.layer.geometry.columns]  // an entry of row 0 joins a group of row 1
        #expect(throws: BinarizeError.self) {
            _ = try SaliencyMask.select(target: p.target, layout: p.layout, groups: groups, wholeTensor: false, bits: [1, 2, 3],
                                        fractions: [0.7, 0.2, 0.1], system: p.system, geometry: p.layer.geometry)
        }
    }
}
