import Dispatch

/// Splits `0..<count` into `threads` contiguous chunks run with `DispatchQueue.concurrentPerform`.
/// The body may write through raw pointers: each index is visited exactly once, so callers that
/// write disjoint memory per index need no locks.
public enum Parallel {
    public static func forEach(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        let t = min(max(threads, 1), count)
        if t <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: t) { chunk in
                let lo = count * chunk / t
                let hi = count * (chunk + 1) / t
                for i in lo..<hi { box.value(i) }
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
/// im2col or col2im buffer do not allocate and page-fault on every call.
public final class KernelScratch {
    private var pointer: UnsafeMutablePointer<Float>?
    private var capacity = 0

    public init() {}
    deinit { pointer?.deallocate() }

    /// At least `count` floats, valid until the next call. Contents are unspecified.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity || pointer == nil {
            pointer?.deallocate()
            capacity = max(count, 16)
            pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity)
        }
        return pointer!
    }
}
