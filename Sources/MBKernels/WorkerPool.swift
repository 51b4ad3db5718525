import CFloatKernels
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Helper threads for `Parallel.forEach` that spin for a short while after each job before
/// they sleep. A convolution of SqueezeNet takes 50-700 µs; a GCD worker woken for it can
/// arrive tens of µs late (or not at all, when the caller has already run every chunk
/// itself). Spinning workers pick a job up within a fraction of a µs. One job runs at a time:
/// a caller that finds the pool busy (another session, or a chunk that itself parallelizes)
/// gets `false` and uses GCD instead.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker waits for the next job before it sleeps: longer than the gaps
    /// between the parallel kernels of one inference, short enough not to burn a core when
    /// idle. The first eighth is a pure spin (`pause`), the rest yields the core between checks.
    /// (A pure spin of half the time made no measurable difference on the speech-embedding CNN,
    /// where the helper does a third of the work because the small layers stay on one thread.)
    static let spinNanoseconds: UInt64 = 200_000
    /// Most helper threads ever started.
    static let maxWorkers = 63

    /// One `forEach`. Its chunks are dealt out in contiguous ranges, one per participant (the
    /// caller is participant 0, worker `w` is participant `w`): each runs its own range front
    /// to back and then takes the back ends of the others' ranges that nobody has started.
    /// Static ranges keep each thread on the same part of consecutive layers' data: a split of a
    /// convolution's columns gives thread 1 the same half of every feature map, which it wrote
    /// itself in the layer before. Measured on the 2-core Zen 4 VM: writing cache lines the other
    /// core has read runs at 2.3 GB/s (each line's invalidation waits a round trip), against
    /// 110 GB/s for lines only this core holds; chunks claimed first-come-first-served (the
    /// previous scheme) hand data across cores at every layer and ran SqueezeNet no faster on
    /// two threads than on one. Stealing from the back still lets a caller whose helper starts
    /// late (or was preempted on a busy machine) finish the job alone.
    private final class Job: @unchecked Sendable {
        /// The caller's closure, borrowed: it lives on the caller's stack until `finished` reaches `count`.
        let body: UnsafePointer<(Int) -> Void>
        let count: Int
        let parts: Int
        let finished = Atomic<Int>(0)
        /// Per participant `p`, its unclaimed chunks `front..<back` as `front << 32 | back`, at
        /// `ranges[p * spacing]` (a cache line apart).
        private let ranges: UnsafeMutablePointer<Atomic<Int>>
        private static let spacing = 8

        init(body: UnsafePointer<(Int) -> Void>, count: Int, parts: Int) {
            self.body = body
            self.count = count
            self.parts = parts
            ranges = .allocate(capacity: parts * Self.spacing)
            for p in 0..<parts {
                (ranges + p * Self.spacing).initialize(to: Atomic((count * p / parts) << 32 | (count * (p + 1) / parts)))
            }
        }

        deinit {
            for p in 0..<parts { (ranges + p * Self.spacing).deinitialize(count: 1) }
            ranges.deallocate()
        }

        /// The next chunk of participant `p`'s range: its front one (`fromBack` false) or its back one.
        private func claim(_ p: Int, fromBack: Bool) -> Int? {
            let range = ranges + p * Self.spacing
            var v = range.pointee.load(ordering: .relaxed)
            while true {
                let front = v >> 32, back = v & 0xFFFF_FFFF
                guard front < back else { return nil }
                let next = fromBack ? front << 32 | (back - 1) : (front + 1) << 32 | back
                let (exchanged, original) = range.pointee.compareExchange(expected: v, desired: next, ordering: .relaxed)
                if exchanged { return fromBack ? back - 1 : front }
                v = original
            }
        }

        /// Participant `p`'s share: its own range, then what is left of the others'.
        func work(_ p: Int) {
            while let i = claim(p, fromBack: false) {
                call(i)
                finished.wrappingAdd(1, ordering: .releasing)
            }
            for d in 1..<parts {
                let q = (p + d) % parts
                while let i = claim(q, fromBack: true) {
                    call(i)
                    finished.wrappingAdd(1, ordering: .releasing)
                }
            }
        }

        /// One chunk. Not inlined: the copy of the caller's closure that `pointee` makes is
        /// released before this returns, so before the count that lets the caller return (inlined,
        /// the optimizer may keep one copy alive across the loops of `work`, and the caller's
        /// `withoutActuallyEscaping` traps on it).
        @inline(never)
        private func call(_ i: Int) {
            body.pointee(i)
        }
    }

    private let busy = Atomic<Bool>(false)
    private let epoch = Atomic<Int>(0)
    private let current = Mutex<Job?>(nil)
    private let sleepers = Atomic<Int>(0)
    private let wake = DispatchSemaphore(value: 0)
    private let started = Mutex<Int>(0)

    /// Runs `body(0..<count)` on the caller and up to `helpers` workers, returning when every
    /// call has returned; false (nothing run) when the pool is busy.
    func run(_ count: Int, helpers: Int, _ body: (Int) -> Void) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        let helpers = min(helpers, Self.maxWorkers)
        startWorkers(helpers)
        withoutActuallyEscaping(body) { escapable in
            withUnsafePointer(to: escapable) { pointer in
                let job = Job(body: pointer, count: count, parts: helpers + 1)
                current.withLock { $0 = job }
                epoch.wrappingAdd(1, ordering: .sequentiallyConsistent)
                let asleep = sleepers.load(ordering: .sequentiallyConsistent)
                for _ in 0..<min(asleep, helpers) { wake.signal() }
                job.work(0)
                // A helper still in a chunk: spin, yielding the core after a while in case the
                // helper was preempted on a loaded machine and is waiting for one.
                var waits = 0
                while job.finished.load(ordering: .acquiring) < count {
                    waits &+= 1
                    if waits > 2000 { sched_yield() }
                }
                current.withLock { $0 = nil }
            }
        }
        return true
    }

    private func startWorkers(_ n: Int) {
        started.withLock { count in
            while count < n {
                count += 1
                let index = count
                startThread { [unowned self] in self.workerLoop(index) }
            }
        }
    }

    /// Worker `index` (1, 2, ...) is participant `index` of every job that has that many.
    private func workerLoop(_ index: Int) {
        var seen = epoch.load(ordering: .acquiring)
        while true {
            var spinStart = DispatchTime.now().uptimeNanoseconds
            var spins = 0
            while epoch.load(ordering: .acquiring) == seen {
                fk_spin_pause()
                spins &+= 1
                guard spins & 255 == 0 else { continue }
                let waited = DispatchTime.now().uptimeNanoseconds - spinStart
                // Past the first stretch, let other runnable threads (the caller, other
                // processes on a busy machine) have the core between checks.
                if waited > Self.spinNanoseconds / 8 { sched_yield() }
                if waited > Self.spinNanoseconds {
                    // Sleep unless a job was posted after the count went up (the poster reads
                    // `sleepers` after bumping `epoch`, so one of the two sees the other).
                    sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
                    if epoch.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                    sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                    spinStart = DispatchTime.now().uptimeNanoseconds
                }
            }
            seen = epoch.load(ordering: .acquiring)
            guard let job = current.withLock({ $0 }) else { continue }
            // Workers past the job's participants go back to waiting.
            if index < job.parts { job.work(index) }
        }
    }
}

/// What a worker thread runs (handed over retained). Threads are not named: Glibc's
/// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not define.
private final class ThreadStart {
    let body: @Sendable () -> Void
    init(body: @escaping @Sendable () -> Void) { self.body = body }
    func run() { body() }
}

/// A detached thread running `body`, through pthreads (Foundation's `Thread` was the only reason
/// this module needed Foundation). The two branches differ only in how the C types are spelled.
private func startThread(_ body: @escaping @Sendable () -> Void) {
    let start = Unmanaged.passRetained(ThreadStart(body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    #if canImport(Darwin)
    var thread: pthread_t? = nil
    let rc = pthread_create(&thread, &attributes, { raw in
        Unmanaged<ThreadStart>.fromOpaque(raw).takeRetainedValue().run()
        return nil
    }, start)
    #else
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        if let raw { Unmanaged<ThreadStart>.fromOpaque(raw).takeRetainedValue().run() }
        return nil
    }, start)
    #endif
    pthread_attr_destroy(&attributes)
    precondition(rc == 0, "mbkernels: cannot start a worker thread (pthread_create: \(rc))")
}
