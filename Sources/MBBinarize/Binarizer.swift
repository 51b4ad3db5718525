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

/// The active entries of a level read off the mask, with no list kept: number i is the i-th
/// position (ascending) whose width is unassigned (0) or at least `level`. Every pass of the
/// engine reads the numbers in increasing order, so a cursor makes a read O(1) on average
/// (reading a lower number scans again from the start), eight mask bytes at a time. Marking an
/// active entry with this level, or clearing it, keeps it active, so the passes may write the
/// mask as they go.
struct ScannedEntries: HBB.ActiveEntries {
    let mask: UnsafePointer<UInt8>
    let level: UInt8
    let count: Int
    /// Entries in the group (the mask's length).
    let limit: Int
    let cursor: UnsafeMutablePointer<Int>

    init(mask: UnsafePointer<UInt8>, level: UInt8, count: Int, limit: Int, cursor: UnsafeMutablePointer<Int>) {
        self.mask = mask
        self.level = level
        self.count = count
        self.limit = limit
        self.cursor = cursor
        cursor[0] = -1
        cursor[1] = -1
    }

    @inline(__always) subscript(i: Int) -> Int {
        var number = cursor[0], p = cursor[1]
        if i == number { return p }
        if i < number { number = -1; p = -1 }
        // Finished entries have a width in 1..<level: (width - 1) mod 256 < level - 1. Eight at a
        // time: widths are at most 8, so per byte b + 0x7F has its top bit set iff b >= 1, and
        // b + 0x80 - level iff b >= level, with no carry into the next byte.
        let finished = level &- 1
        let high: UInt64 = 0x8080_8080_8080_8080
        let atLeastLevel = UInt64(0x80 &- level) &* 0x0101_0101_0101_0101
        while number < i {
            p += 1
            while p + 8 <= limit {
                let w = UnsafeRawPointer(mask + p).loadUnaligned(as: UInt64.self)
                let done = (w &+ 0x7F7F_7F7F_7F7F_7F7F) & ~(w &+ atLeastLevel) & high
                let active = ~done & high
                if active != 0 {
                    p += active.trailingZeroBitCount >> 3
                    break
                }
                p += 8
            }
            while mask[p] &- 1 < finished { p += 1 }
            number += 1
        }
        cursor[0] = number
        cursor[1] = p
        return p
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
        var mask = givenMask.map { layout.toGroupMajor($0) } ?? [UInt8](repeating: 0, count: n)
        var scales = [[Float]](repeating: [Float](repeating: 0, count: layout.groupCount), count: K)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: layout.groupCount), count: K)
        let wordsPerLevel = n / 64 + 2
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: wordsPerLevel * K)
        defer { words.deallocate() }
        var writers = (0..<K).map { HBB.BitWriter(words: words + $0 * wordsPerLevel) }
        // Per-group buffers, reused group after group. Only the part the entries still active
        // after a level reach is ever written, so untouched pages never become resident.
        let work = GroupWork(capacity: layout.groupSize)
        defer { work.deallocate() }
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
                            values: values.baseAddress! + start, mask: mask.baseAddress! + start, count: size, plan: plan,
                            writers: &writers, work: work)
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

    /// The working buffers of one group. The residuals are kept for the entries still active
    /// only, by number (`residual[i]` is E of the i-th active entry in index order), compacted
    /// level by level; which entries those are is read off the mask (`ScannedEntries`), not
    /// listed. So the working memory follows the entries that go on (30 % of the tensor for
    /// 1.4-bit 70/20/10: 1.2 bytes per element), not the tensor.
    struct GroupWork {
        let residual: UnsafeMutablePointer<Float>
        /// `ScannedEntries`' cursor: the number and position last read.
        let cursor: UnsafeMutablePointer<Int>
        /// Marks of a residual selection over scanned entries, by number (copied to the mask after).
        let marks: UnsafeMutablePointer<UInt8>
        let scratch: HBB.SelectionScratch

        init(capacity: Int) {
            residual = .allocate(capacity: max(capacity, 1))
            cursor = .allocate(capacity: 2)
            marks = .allocate(capacity: max(capacity, 1))
            scratch = HBB.SelectionScratch(capacity: capacity)
        }

        func deallocate() {
            residual.deallocate()
            cursor.deallocate()
            marks.deallocate()
            scratch.deallocate()
        }
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
        values: UnsafePointer<Float>, mask: UnsafeMutablePointer<UInt8>, count n: Int, plan: LevelPlan,
        writers: inout [HBB.BitWriter], work: GroupWork
    ) -> GroupResult {
        var results = [LevelResult](repeating: LevelResult(scale: 0, count: 0), count: plan.levels)
        var activeCount = n
        for k in 1...plan.levels {
            guard activeCount > 0 else { continue }
            results[k - 1].count = activeCount
            let entry = plan.entry(forLevel: k)
            // E_{k-1} of active entry number i: T at level 1 (never copied), then the compacted residuals.
            let current = k == 1 ? values : UnsafePointer(work.residual)
            let sum = HBB.canonicalAbsSum(HBB.AllEntries(count: activeCount), current)
            if k == 1, !sum.isFinite {
                return .failure((0..<n).first { !values[$0].isFinite }!)
            }
            let mu = HBB.levelScale(sum: sum, count: activeCount)
            let level = LevelStep(level: UInt8(k), scale: mu, assignAll: entry?.isLast == true)
            if activeCount == n {
                activeCount = step(HBB.AllEntries(count: n), total: n, entry: entry, plan: plan, values: values, current: current,
                                   residualMean: sum / Double(activeCount), mask: mask, level: level, signs: &writers[k - 1], work: work)
            } else {
                let active = ScannedEntries(mask: mask, level: UInt8(k), count: activeCount, limit: n, cursor: work.cursor)
                activeCount = step(active, total: n, entry: entry, plan: plan, values: values, current: current,
                                   residualMean: sum / Double(activeCount), mask: mask, level: level, signs: &writers[k - 1], work: work)
            }
            results[k - 1].scale = mu
        }
        return .success(results)
    }

    struct LevelStep {
        var level: UInt8
        var scale: Float
        /// Every active entry gets this width (the last width takes the rest).
        var assignAll: Bool
    }

    /// One level on the active entries (`active[i]` is the entry of number i, `current[i]` its
    /// E_{k-1}): the selection, the signs, and the compaction of the entries that go on.
    /// Returns their number.
    @inline(__always)
    static func step<A: HBB.ActiveEntries>(
        _ active: A, total n: Int, entry: (fraction: Double, isLast: Bool)?, plan: LevelPlan, values: UnsafePointer<Float>,
        current: UnsafePointer<Float>, residualMean: Double, mask: UnsafeMutablePointer<UInt8>, level: LevelStep,
        signs: inout HBB.BitWriter, work: GroupWork
    ) -> Int {
        let count = active.count
        if let entry, !entry.isLast {
            // Middle-Out ranks by the original values: at level 1 their mean is the residual's.
            let valueMean = plan.ranking == .select(.middleOut)
                ? (current == values ? residualMean : HBB.canonicalAbsSum(active, values) / Double(count)) : 0
            select(active, entry.fraction, total: n, level: level.level, plan: plan, values: values, current: current,
                   mask: mask, residualMean: residualMean, valueMean: valueMean, work: work)
        }
        return apply(active, current: current, mask: mask, level: level, signs: &signs, work: work)
    }

    /// Signs and residual update of one level (s = sign(E), sign(0) = +1; E -= mu s), with the
    /// residuals of the entries that go on written to the front of the residual buffer (in
    /// place: number i moves to a number at most i). Branch-free, as
    /// `HBB.applyLevel`, whose arithmetic this is, with the residuals kept by number, not by entry.
    @inline(__always)
    static func apply<A: HBB.ActiveEntries>(
        _ active: A, current: UnsafePointer<Float>, mask: UnsafeMutablePointer<UInt8>, level step: LevelStep,
        signs: inout HBB.BitWriter, work: GroupWork
    ) -> Int {
        let n = active.count
        let mu = step.scale
        if step.assignAll {
            // No entry goes on: signs only, and every active entry gets this width.
            var i = 0
            while i < n {
                let block = min(64, n - i)
                var word: UInt64 = 0
                for b in 0..<block {
                    word |= UInt64(current[i + b] >= 0 ? 1 : 0) &<< UInt64(b)
                    mask[active[i + b]] = step.level
                }
                signs.append(word: word, count: block)
                i += block
            }
            return 0
        }
        let residual = work.residual
        let level = UInt32(step.level)
        var kept = 0
        var i = 0
        while i < n {
            let block = min(64, n - i)
            var word: UInt64 = 0
            for b in 0..<block {
                let e = current[i + b]
                let negative: UInt32 = e >= 0 ? 0 : 1
                // e - (+-mu): subtracting -mu is exactly adding mu.
                residual[kept] = e - Float(bitPattern: mu.bitPattern ^ (negative << 31))
                word |= UInt64(negative ^ 1) &<< UInt64(b)
                let j = active[i + b]
                // Keep when (mask - 1) mod 256 >= level: 0 (unassigned) wraps to 255.
                let t = UInt32(mask[j] &- 1) &- level
                kept &+= Int(truncatingIfNeeded: (t >> 31) ^ 1)
            }
            signs.append(word: word, count: block)
            i += block
        }
        return kept
    }

    /// Marks the round(p n) active entries with the smallest key of the plan's method.
    @inline(__always)
    static func select<A: HBB.ActiveEntries>(
        _ active: A, _ fraction: Double, total n: Int, level: UInt8, plan: LevelPlan,
        values: UnsafePointer<Float>, current: UnsafePointer<Float>, mask: UnsafeMutablePointer<UInt8>,
        residualMean: Double, valueMean: Double, work: GroupWork
    ) {
        let c = min(HBB.roundedCount(fraction, of: n), active.count)
        let scratch = work.scratch
        guard case .select(let method) = plan.ranking else { return }
        switch method {
        case .middleOut:
            HBB.selectSmallest(active, count: c, key: HBB.MiddleOutKey(values: values, mean: valueMean), mask: mask, mark: level, scratch: scratch)
        case .residualMiddleOut:
            // The residuals are kept by number: select numbers, then mark their entries.
            let count = active.count
            let numbers = HBB.AllEntries(count: count)
            let key = HBB.MiddleOutKey(values: current, mean: residualMean)
            if count == n {
                HBB.selectSmallest(numbers, count: c, key: key, mask: mask, mark: level, scratch: scratch)
            } else {
                work.marks.update(repeating: 0, count: count)
                HBB.selectSmallest(numbers, count: c, key: key, mask: work.marks, mark: level, scratch: scratch)
                for i in 0..<count {
                    let j = active[i]
                    if work.marks[i] != 0 { mask[j] = level }
                }
            }
        case .topDown:
            HBB.selectSmallest(active, count: c, key: HBB.TopDownKey(values: values), mask: mask, mark: level, scratch: scratch)
        case .bottomUp:
            HBB.selectSmallest(active, count: c, key: HBB.BottomUpKey(values: values), mask: mask, mark: level, scratch: scratch)
        case .random:
            preconditionFailure("the Random method has no selection key")
        }
    }
}
