import MBCore
import MBKernels

extension Binarizer {
    /// HBB.md transcribed with arrays: at each width, the remaining entries are sorted by
    /// (key, index) and the first round(p N) taken; each level's mean is taken over its active
    /// set. Slow (a full sort per width) and obviously faithful; `binarize` must agree with it
    /// bit for bit.
    public static func binarizeReference(_ tensor: FloatTensor, _ config: BinarizationConfig) throws(BinarizeError) -> PackedTensor {
        let plan = LevelPlan(distribution: config.distribution, method: config.method, seed: config.seed)
        return try reference(tensor, scale: config.scale, plan: plan, givenMask: nil)
    }

    /// Reference twin of `binarize(_:mask:scale:)`.
    public static func binarizeReference(_ tensor: FloatTensor, mask: [UInt8], scale: ScaleMode = .tensor) throws(BinarizeError) -> PackedTensor {
        let levels = try checkMask(mask, for: tensor)
        return try reference(tensor, scale: scale, plan: LevelPlan(givenMaskLevels: levels), givenMask: mask)
    }

    static func reference(_ tensor: FloatTensor, scale: ScaleMode, plan: LevelPlan, givenMask: [UInt8]?) throws(BinarizeError) -> PackedTensor {
        if let error = firstNonFinite(tensor.values, tensor: tensor.name) { throw error }
        let layout = try GroupLayout(shape: tensor.shape, scale: scale, tensor: tensor.name)
        let K = plan.levels
        let allValues = layout.toGroupMajor(tensor.values)
        let allGiven = givenMask.map { layout.toGroupMajor($0) }
        var generator = SeededGenerator(seed: 0)
        if case .random(let seed) = plan.ranking { generator = SeededGenerator(seed: seed) }

        var maskOut: [UInt8] = []
        var signs = [[Bool]](repeating: [], count: K)
        var scales = [[Float]](repeating: [], count: K)
        var counts = [[Int]](repeating: [], count: K)
        for g in 0..<layout.groupCount {
            let range = (g * layout.groupSize)..<((g + 1) * layout.groupSize)
            let T = Array(allValues[range])
            let n = T.count
            var M = [Int](repeating: 0, count: n)  // 0: not assigned yet
            switch plan.ranking {
            case .given: M = allGiven![range].map(Int.init)
            case .random: M = randomMask(count: n, distribution: plan.used, generator: &generator).map(Int.init)
            case .select: break
            }
            var E = T
            for k in 1...K {
                // Choose the entries of width k among those still without a width.
                if case .select(let method) = plan.ranking, let i = plan.used.firstIndex(where: { $0.bits == k }) {
                    let remaining = (0..<n).filter { M[$0] == 0 }
                    if i == plan.used.count - 1 {
                        for j in remaining { M[j] = k }
                    } else {
                        let c = min(HBB.roundedCount(plan.used[i].fraction, of: n), remaining.count)
                        let key = referenceKeys(method, T: T, E: E, remaining: remaining)
                        let order = remaining.sorted { (key[$0]!, $0) < (key[$1]!, $1) }
                        for j in order.prefix(c) { M[j] = k }
                    }
                }
                // Level k on A_k = { j : M_j >= k } (entries without a width yet are still in).
                let A = (0..<n).filter { M[$0] == 0 || M[$0] >= k }
                var mu: Float = 0
                if !A.isEmpty {
                    mu = Float(HBB.canonicalSum(A.map { Double(abs(E[$0])) }) / Double(A.count))
                    for j in A {
                        let positive = E[j] >= 0  // sign(0) = +1
                        signs[k - 1].append(positive)
                        E[j] = positive ? E[j] - mu : E[j] + mu
                    }
                }
                scales[k - 1].append(mu)
                counts[k - 1].append(A.count)
            }
            maskOut += M.map { UInt8($0) }
        }
        let levels = (0..<K).map { PackedLevel(scales: scales[$0], activeCounts: counts[$0], signs: packBits(signs[$0])) }
        return PackedTensor(shape: tensor.shape, scale: scale, mask: layout.toFlat(maskOut), levels: levels)
    }

    /// The selection key of each remaining entry, as a Double (smaller is chosen first).
    private static func referenceKeys(_ method: MaskMethod, T: [Float], E: [Float], remaining: [Int]) -> [Int: Double] {
        var key: [Int: Double] = [:]
        switch method {
        case .middleOut, .residualMiddleOut:
            let v = method == .middleOut ? T : E
            let m = HBB.canonicalSum(remaining.map { Double(abs(v[$0])) }) / Double(remaining.count)
            for j in remaining { key[j] = abs(Double(abs(v[j])) - m) }
        case .topDown:
            for j in remaining { key[j] = -Double(abs(T[j])) }
        case .bottomUp:
            for j in remaining { key[j] = Double(abs(T[j])) }
        case .random:
            preconditionFailure("the Random method has no selection key")
        }
        return key
    }
}
