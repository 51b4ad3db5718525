import MBCore
import MBKernels

/// Residual binarization of HBB.md, homogeneous and heterogeneous, with the mask chosen by a
/// heuristic or given by the caller. `binarize` is the fast path (O(N) per level, radix select,
/// loops over unsafe buffers); `binarizeReference` (Binarizer+Reference.swift) transcribes
/// HBB.md with arrays and a full sort, and the two agree bit for bit.
public enum Binarizer {
    /// Binarizes `tensor` with the mask chosen by `config.method`.
    public static func binarize(_ tensor: FloatTensor, _ config: BinarizationConfig) throws(BinarizeError) -> PackedTensor {
        let plan = LevelPlan(distribution: config.distribution, method: config.method, seed: config.seed)
        return try FastBinarizer.run(tensor, scale: config.scale, plan: plan, givenMask: nil)
    }

    /// Homogeneous residual binarization with `bits` levels (1...8).
    public static func binarize(_ tensor: FloatTensor, bits: Int, scale: ScaleMode = .tensor) throws(BinarizeError) -> PackedTensor {
        let distribution: BitDistribution
        do { distribution = try .homogeneous(bits) } catch { throw .invalidConfiguration(error.message) }
        return try binarize(tensor, BinarizationConfig(distribution: distribution, scale: scale))
    }

    /// Heterogeneous binarization for a given mask (flat order, bit widths 1...8).
    public static func binarize(_ tensor: FloatTensor, mask: [UInt8], scale: ScaleMode = .tensor) throws(BinarizeError) -> PackedTensor {
        let levels = try checkMask(mask, for: tensor)
        return try FastBinarizer.run(tensor, scale: scale, plan: LevelPlan(givenMaskLevels: levels), givenMask: mask)
    }

    static func checkMask(_ mask: [UInt8], for tensor: FloatTensor) throws(BinarizeError) -> Int {
        guard mask.count == tensor.values.count else {
            throw .invalidMask(tensor: tensor.name, reason: "has \(mask.count) entries for \(tensor.values.count) values")
        }
        if let bad = mask.firstIndex(where: { $0 < 1 || Int($0) > BitDistribution.maxBits }) {
            throw .invalidMask(tensor: tensor.name, reason: "entry \(bad) is \(mask[bad]); bit widths are 1...\(BitDistribution.maxBits)")
        }
        return Int(mask.max() ?? 1)
    }

    /// The error for the first NaN or infinity of `values` in flat order.
    static func firstNonFinite(_ values: [Float], tensor: String) -> BinarizeError? {
        guard let i = values.firstIndex(where: { !$0.isFinite }) else { return nil }
        return .nonFinite(tensor: tensor, index: i, value: values[i])
    }
}

/// What to do at each level: which widths exist, with which fractions, and how entries are
/// ranked for them.
struct LevelPlan {
    enum Ranking: Equatable {
        /// Selection by a key at each width but the last (middle-out, top-down, bottom-up,
        /// residual-middle-out).
        case select(MaskMethod)
        /// A seeded permutation fixes the whole mask up front.
        case random(seed: UInt64)
        /// The caller gave the mask.
        case given
    }

    let levels: Int
    let used: [BitDistribution.Entry]
    let ranking: Ranking

    init(distribution: BitDistribution, method: MaskMethod, seed: UInt64) {
        used = distribution.used
        levels = distribution.maxUsedBits
        ranking = method == .random ? .random(seed: seed) : .select(method)
    }

    init(givenMaskLevels: Int) {
        used = []
        levels = givenMaskLevels
        ranking = .given
    }

    /// For a selecting plan: the fraction of width `k`, and whether it is the last width.
    func entry(forLevel k: Int) -> (fraction: Double, isLast: Bool)? {
        guard case .select = ranking, let i = used.firstIndex(where: { $0.bits == k }) else { return nil }
        return (used[i].fraction, i == used.count - 1)
    }
}

enum FastBinarizer {
    static func run(_ tensor: FloatTensor, scale: ScaleMode, plan: LevelPlan, givenMask: [UInt8]?) throws(BinarizeError) -> PackedTensor {
        let layout = try GroupLayout(shape: tensor.shape, scale: scale, tensor: tensor.name)
        let n = layout.count
        let K = plan.levels
        let groupMajor = layout.toGroupMajor(tensor.values)
        // E_k; level 1 reads T and writes E_1 here, so T is never copied.
        let residual = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        defer { residual.deallocate() }
        var mask = givenMask.map { layout.toGroupMajor($0) } ?? [UInt8](repeating: 0, count: n)
        var scales = [[Float]](repeating: [Float](repeating: 0, count: layout.groupCount), count: K)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: layout.groupCount), count: K)
        let wordsPerLevel = n / 64 + 2
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: wordsPerLevel * K)
        defer { words.deallocate() }
        var writers = (0..<K).map { HBB.BitWriter(words: words + $0 * wordsPerLevel) }
        let scratch = HBB.SelectionScratch(capacity: layout.groupSize)
        defer { scratch.deallocate() }
        let list = UnsafeMutablePointer<UInt32>.allocate(capacity: max(layout.groupSize, 1))
        defer { list.deallocate() }
        var generator: SeededGenerator? = nil
        if case .random(let seed) = plan.ranking { generator = SeededGenerator(seed: seed) }

        var failure: BinarizeError? = nil
        groupMajor.withUnsafeBufferPointer { values in
                mask.withUnsafeMutableBufferPointer { mask in
                    for g in 0..<layout.groupCount {
                        let start = g * layout.groupSize
                        let size = layout.groupSize
                        if generator != nil {
                            let m = randomMask(count: size, distribution: plan.used, generator: &generator!)
                            for i in 0..<size { mask[start + i] = m[i] }
                        }
                        let result = binarizeGroup(
                            values: values.baseAddress! + start, residual: residual + start,
                            mask: mask.baseAddress! + start, count: size, plan: plan,
                            writers: &writers, scratch: scratch, list: list)
                        switch result {
                        case .failure(let position):
                            let flat = layout.flatIndex(ofGroupMajor: start + position)
                            failure = .nonFinite(tensor: tensor.name, index: flat, value: tensor.values[flat])
                            return
                        case .success(let levelScales):
                            for (k, s) in levelScales.enumerated() {
                                scales[k][g] = s.scale
                                counts[k][g] = s.count
                            }
                        }
                    }
                }
        }
        if let failure { throw failure }

        var levels: [PackedLevel] = []
        for k in 0..<K {
            let used = writers[k].finish()
            let signs = Array(UnsafeBufferPointer(start: words + k * wordsPerLevel, count: used))
            levels.append(PackedLevel(scales: scales[k], activeCounts: counts[k], signs: signs))
        }
        return PackedTensor(shape: tensor.shape, scale: scale, mask: layout.toFlat(mask), levels: levels)
    }

    struct LevelResult {
        var scale: Float
        var count: Int
    }

    enum GroupResult {
        case success([LevelResult])
        /// Position (within the group) of the first non-finite value.
        case failure(Int)
    }

    /// One group: for each level, choose the entries whose width is this level (when the plan
    /// selects), compute mu over the active entries, apply the level, drop finished entries.
    @inline(__always)
    static func binarizeGroup(
        values: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
        count n: Int, plan: LevelPlan, writers: inout [HBB.BitWriter], scratch: HBB.SelectionScratch, list: UnsafeMutablePointer<UInt32>
    ) -> GroupResult {
        var results = [LevelResult](repeating: LevelResult(scale: 0, count: 0), count: plan.levels)
        var activeCount = n
        for k in 1...plan.levels {
            guard activeCount > 0 else { continue }
            results[k - 1].count = activeCount
            let entry = plan.entry(forLevel: k)
            let level = UInt8(k)
            let assignAll = entry?.isLast == true
            let mu: Float
            if k == 1 {
                // E_0 = T: read `values`; the first level writes E_1 to `residual`.
                let all = HBB.AllEntries(count: n)
                let sum = HBB.canonicalAbsSum(all, values)
                guard sum.isFinite else {
                    return .failure((0..<n).first { !values[$0].isFinite }!)
                }
                mu = HBB.levelScale(sum: sum, count: n)
                if let entry, !entry.isLast {
                    select(all, entry.fraction, total: n, level: level, plan: plan, values: values, residual: values,
                           mask: mask, residualMean: sum / Double(n), valueMean: sum / Double(n), scratch: scratch)
                }
                activeCount = HBB.applyLevel(all, source: values, residual: residual, mask: mask, level: level, scale: mu,
                                         assignAll: assignAll, signs: &writers[0], next: list)
            } else {
                let active = HBB.ListedEntries(list: list, count: activeCount)
                let sum = HBB.canonicalAbsSum(active, residual)
                mu = HBB.levelScale(sum: sum, count: activeCount)
                if let entry, !entry.isLast {
                    let valueMean = plan.ranking == .select(.middleOut) ? HBB.canonicalAbsSum(active, values) / Double(activeCount) : 0
                    select(active, entry.fraction, total: n, level: level, plan: plan, values: values, residual: residual,
                           mask: mask, residualMean: sum / Double(activeCount), valueMean: valueMean, scratch: scratch)
                }
                activeCount = HBB.applyLevel(active, source: residual, residual: residual, mask: mask, level: level, scale: mu,
                                         assignAll: assignAll, signs: &writers[k - 1], next: list)
            }
            results[k - 1].scale = mu
        }
        return .success(results)
    }

    /// Marks the round(p n) active entries with the smallest key of the plan's method.
    @inline(__always)
    static func select<A: HBB.ActiveEntries>(
        _ active: A, _ fraction: Double, total n: Int, level: UInt8, plan: LevelPlan,
        values: UnsafePointer<Float>, residual: UnsafePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
        residualMean: Double, valueMean: Double, scratch: HBB.SelectionScratch
    ) {
        let c = min(HBB.roundedCount(fraction, of: n), active.count)
        guard case .select(let method) = plan.ranking else { return }
        switch method {
        case .middleOut:
            HBB.selectSmallest(active, count: c, key: HBB.MiddleOutKey(values: values, mean: valueMean), mask: mask, mark: level, scratch: scratch)
        case .residualMiddleOut:
            HBB.selectSmallest(active, count: c, key: HBB.MiddleOutKey(values: residual, mean: residualMean), mask: mask, mark: level, scratch: scratch)
        case .topDown:
            HBB.selectSmallest(active, count: c, key: HBB.TopDownKey(values: values), mask: mask, mark: level, scratch: scratch)
        case .bottomUp:
            HBB.selectSmallest(active, count: c, key: HBB.BottomUpKey(values: values), mask: mask, mark: level, scratch: scratch)
        case .random:
            preconditionFailure("the Random method has no selection key")
        }
    }
}
