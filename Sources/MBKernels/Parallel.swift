import Dispatch

/// Runs `body` for every index of `0..<count` on up to `threads` threads: the caller and
/// spinning helper threads (`WorkerPool`), or GCD's `concurrentPerform` (one contiguous chunk
/// per thread) when the pool is busy. With the pool the indices are cut into up to 4 contiguous
/// chunks per thread; thread `t` runs the `t`-th contiguous share of them first (the same part
/// of the index range on every call, so consecutive layers split alike keep their data on one
/// core) and then takes unstarted chunks from the others' ends, so a helper that starts late
/// costs a chunk, not half the work. The body may write through raw pointers: each index is
/// visited exactly once, so callers that write disjoint memory per index need no locks.
public enum Parallel {
    public static func forEach(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        let t = min(max(threads, 1), count)
        if t <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        let chunks = min(count, 4 * t)
        let chunk = { (c: Int) in
            for i in (count * c / chunks)..<(count * (c + 1) / chunks) { body(i) }
        }
        if WorkerPool.shared.run(chunks, helpers: t - 1, chunk) { return }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: t) { c in
                for i in (count * c / t)..<(count * (c + 1) / t) { box.value(i) }
            }
        }
    }
}

/// Carries a value that is only used in ways the caller has proven race-free into a
/// `@Sendable` closure.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// Which implementation a kernel call uses: the fast one, or its plain-loop reference twin.
public enum KernelVariant: String, Sendable, CaseIterable {
    case fast
    case reference
}

/// Reusable scratch memory owned by the caller (one per session), so kernels that need an
/// im2col, padded-input or col2im buffer do not allocate and page-fault on every call. Each
/// `Slot` is its own buffer, so one kernel can hold several at once.
public final class KernelScratch {
    /// Independent buffers: `.columns` (im2col, col2im), `.padded` (a zero-bordered input copy),
    /// `.wideOutput` (a GEMM result with padded rows before compaction), `.rowPointers`,
    /// `.packedWeights` (weights packed for one call).
    public enum Slot: Int, CaseIterable, Sendable {
        case columns, padded, wideOutput, rowPointers, packedWeights
    }

    private var pointers: [UnsafeMutableRawPointer?] = Array(repeating: nil, count: Slot.allCases.count)
    private var capacities: [Int] = Array(repeating: 0, count: Slot.allCases.count)

    public init() {}
    deinit { for p in pointers { p?.deallocate() } }

    /// At least `count` floats in the `.columns` slot, valid until its next request. Contents are unspecified.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> { floats(count, .columns) }

    /// At least `count` floats in `slot`, valid until that slot's next request. Contents are unspecified.
    public func floats(_ count: Int, _ slot: Slot) -> UnsafeMutablePointer<Float> {
        raw(bytes: count * 4, slot).bindMemory(to: Float.self, capacity: max(count, 16))
    }

    /// Room for `count` row pointers (`.rowPointers` slot).
    public func rowPointers(_ count: Int) -> UnsafeMutablePointer<UnsafePointer<Float>?> {
        raw(bytes: count * MemoryLayout<UnsafePointer<Float>?>.stride, .rowPointers)
            .bindMemory(to: UnsafePointer<Float>?.self, capacity: max(count, 16))
    }

    private func raw(bytes: Int, _ slot: Slot) -> UnsafeMutableRawPointer {
        let i = slot.rawValue
        if bytes > capacities[i] || pointers[i] == nil {
            pointers[i]?.deallocate()
            capacities[i] = max(bytes, 64)
            pointers[i] = UnsafeMutableRawPointer.allocate(byteCount: capacities[i], alignment: 64)
        }
        return pointers[i]!
    }
}
