import Foundation
import Synchronization

/// The round trip of one cache line between a thread on CPU 0 and one on CPU 1, in ns: on a VM
/// whose host moves its vCPUs this is 50-65 ns while they sit on nearby cores and 300-600 ns while
/// they do not, switching within seconds, and two-thread runs are that much slower while it lasts
/// (the README's packed-execution section). Printed beside two-thread benchmarks so their ratios
/// can be compared between runs. nil with fewer than two CPUs or where they cannot be pinned.
enum CoreDistance {
    static func roundTripNanoseconds(trips: Int = 100_000) -> Double? {
        #if os(Linux)
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { return nil }
        // sched_setaffinity needs _GNU_SOURCE, which Swift's Glibc module does not define: looked
        // up by name (pid 0: the calling thread; a 1024-bit CPU mask).
        typealias SetAffinity = @convention(c) (Int32, Int, UnsafeRawPointer) -> Int32
        typealias GetAffinity = @convention(c) (Int32, Int, UnsafeMutableRawPointer) -> Int32
        guard let setSymbol = dlsym(nil, "sched_setaffinity"), let getSymbol = dlsym(nil, "sched_getaffinity") else { return nil }
        let setAffinity = unsafeBitCast(setSymbol, to: SetAffinity.self), getAffinity = unsafeBitCast(getSymbol, to: GetAffinity.self)
        @Sendable func pin(_ cpu: Int) -> Bool {
            var mask = [UInt8](repeating: 0, count: 128)
            mask[cpu / 8] = UInt8(1 << (cpu % 8))
            return mask.withUnsafeBytes { setAffinity(0, $0.count, $0.baseAddress!) } == 0
        }
        // The caller's own CPU set (a `taskset` the user chose) is restored afterwards.
        var original = [UInt8](repeating: 0, count: 128)
        guard original.withUnsafeMutableBytes({ getAffinity(0, $0.count, $0.baseAddress!) }) == 0 else { return nil }
        defer { _ = original.withUnsafeBytes { setAffinity(0, $0.count, $0.baseAddress!) } }
        guard pin(0) else { return nil }
        // Two cache lines apart: the flag and the helper's ready state.
        let cells = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: 16)
        for i in 0..<16 { (cells + i).initialize(to: Atomic(0)) }
        let shared = Cells(pointer: cells)
        let other = Thread {
            let flag = shared.pointer, ready = shared.pointer + 8
            // Pinned, then announced; the caller waits yielding its core, so a real-time caller
            // on the CPU this thread starts on cannot starve it.
            guard pin(1) else { ready.pointee.store(2, ordering: .sequentiallyConsistent); return }
            ready.pointee.store(1, ordering: .sequentiallyConsistent)
            for i in stride(from: 1, to: 2 * trips, by: 2) {
                while flag.pointee.load(ordering: .acquiring) != i {}
                flag.pointee.store(i + 1, ordering: .releasing)
            }
            ready.pointee.store(3, ordering: .sequentiallyConsistent)
        }
        other.start()
        let flag = cells, ready = cells + 8
        while ready.pointee.load(ordering: .sequentiallyConsistent) == 0 { sched_yield() }
        var result: Double? = nil
        if ready.pointee.load(ordering: .sequentiallyConsistent) == 1 {
            let start = DispatchTime.now().uptimeNanoseconds
            for i in stride(from: 0, to: 2 * trips, by: 2) {
                flag.pointee.store(i + 1, ordering: .releasing)
                while flag.pointee.load(ordering: .acquiring) != i + 2 {}
            }
            result = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(trips)
            // The helper's last store is done; wait for it to leave before freeing the cells.
            while ready.pointee.load(ordering: .sequentiallyConsistent) != 3 { sched_yield() }
        }
        cells.deinitialize(count: 16)
        cells.deallocate()
        return result
        #else
        return nil
        #endif
    }

    /// "cross-core round trip N ns" for a benchmark's header ("" where it cannot be measured).
    static func note() -> String {
        roundTripNanoseconds().map { String(format: "cross-core round trip %.0f ns", $0) } ?? ""
    }
}

/// The probe's atomics, handed to the other thread (the caller frees them after it is done).
private struct Cells: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Atomic<Int>>
}
