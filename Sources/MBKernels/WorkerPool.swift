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
    /// idle. The first eighth is a pure spin, the rest yields the core between checks.
    static let spinNanoseconds: UInt64 = 200_000
    /// Most helper threads ever started.
    static let maxWorkers = 63

    /// One `forEach`: chunks are claimed by whoever increments `next` first.
    private final class Job: @unchecked Sendable {
        /// The caller's closure, borrowed: it lives on the caller's stack until `finished` reaches `count`.
        let body: UnsafePointer<(Int) -> Void>
        let count: Int
        let helpers: Int
        let next = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let joined = Atomic<Int>(0)

        init(body: UnsafePointer<(Int) -> Void>, count: Int, helpers: Int) {
            self.body = body
            self.count = count
            self.helpers = helpers
        }

        func work() {
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= count { return }
                body.pointee(i)
                finished.wrappingAdd(1, ordering: .releasing)
            }
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
        startWorkers(min(helpers, Self.maxWorkers))
        withoutActuallyEscaping(body) { escapable in
            withUnsafePointer(to: escapable) { pointer in
                let job = Job(body: pointer, count: count, helpers: helpers)
                current.withLock { $0 = job }
                epoch.wrappingAdd(1, ordering: .sequentiallyConsistent)
                let asleep = sleepers.load(ordering: .sequentiallyConsistent)
                for _ in 0..<min(asleep, helpers) { wake.signal() }
                job.work()
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
                startThread { [unowned self] in self.workerLoop() }
            }
        }
    }

    private func workerLoop() {
        var seen = epoch.load(ordering: .acquiring)
        while true {
            var spinStart = DispatchTime.now().uptimeNanoseconds
            var spins = 0
            while epoch.load(ordering: .acquiring) == seen {
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
            // At most `helpers` workers join; the others go back to waiting.
            if job.joined.wrappingAdd(1, ordering: .relaxed).oldValue < job.helpers { job.work() }
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
