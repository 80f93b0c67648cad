import CSparseKernels
import Foundation

/// Persistent compute threads that split one kernel call into parts (output-row panels).
///
/// A pool of `threadCount` runs `threadCount` parts at once: `threadCount - 1` worker threads plus
/// the calling thread, which always takes parts itself. Parts are claimed dynamically from an
/// atomic counter, so a worker that is slow to wake simply finds no part left.
///
/// Hand-off is spin-then-park: after each job a worker spins on the job counter for `spinSeconds`
/// (≈ 1.5 ms; a hand-off to a spinning worker costs well under 1 µs) and then sleeps on a
/// condition variable (waking a parked thread costs 100–150 µs on the development VM). Calls that
/// are too small to pay for the hand-off (`shouldSplit`) run on the caller alone.
///
/// Locking: one split job runs at a time (`busy`); a caller that finds the pool busy runs its
/// parts inline on its own thread instead of waiting, so concurrent callers never deadlock and the
/// pool never runs more than its configured threads. `State.lock` guards `current`, `sleepers`
/// and `stopping`; `generation` and the per-job counters are C atomics. The workers hold the
/// shared `State`, not the pool, and exit when the pool is released.
public final class KernelPool: @unchecked Sendable {
    /// The pool kernels use unless given another: `SPARSESERVE_KERNEL_THREADS` threads, by default
    /// one per CPU, unless `configureShared(threads:)` chose another size first.
    public static var shared: KernelPool {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let pool = sharedPool { return pool }
        let pool = KernelPool(threads: ProcessInfo.processInfo.environment["SPARSESERVE_KERNEL_THREADS"]
            .flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount)
        sharedPool = pool
        return pool
    }

    /// Sets the size of `shared` (e.g. from the server config). Callers holding the previous shared
    /// pool keep using it until they drop it; its workers then exit.
    public static func configureShared(threads: Int) {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let pool = sharedPool, pool.threadCount == max(1, threads) { return }
        sharedPool = KernelPool(threads: threads)
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedPool: KernelPool?

    /// A pool without workers: everything runs on the caller.
    static let serial = KernelPool(threads: 1)

    /// Threads that compute a split call, counting the caller.
    public let threadCount: Int
    /// How long an idle worker spins before parking.
    public let spinSeconds: Double
    /// Dense-equivalent floating-point work (2·rows·K·N) of a GEMM that takes about 40 µs on one
    /// core; calls below it are not split (see `shouldSplit`).
    public static let splitThresholdFlops = 4_000_000
    /// Default single-thread time below which a call runs on the caller alone (the hand-off and
    /// the duplicated per-part setup would eat the gain).
    public static let splitThresholdSeconds = 30e-6
    /// This pool's split threshold (seconds of estimated single-thread work).
    public let minimumSplitSeconds: Double
    /// Fewest token rows per part for kernels that split a call by token rows (the W8A8 ones,
    /// `applySplitByTokenRows`): a call with rows for two such parts is split by rows, a smaller
    /// one by output panels. 32 rows = 4 of their 8-row tiles.
    public static let tokenSplitRows = 32
    /// This pool's `tokenSplitRows` (tests raise it to reach the output-panel split, or lower it).
    public let minimumTokenSplitRows: Int

    /// One split call: its body, part count and its own claim/finish counters, so a worker that
    /// wakes late can only touch the job it saw (whose counters are exhausted), never a newer one.
    fileprivate final class Job: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let parts: Int
        let counters: UnsafeMutablePointer<Int>  // [next part, finished parts]
        init(_ body: @escaping @Sendable (Int) -> Void, parts: Int) {
            self.body = body
            self.parts = parts
            counters = .allocate(capacity: 2)
            counters.initialize(repeating: 0, count: 2)
        }
        deinit { counters.deallocate() }

        func work() {
            while true {
                let i = ss_atomic_fetch_add(counters, 1)
                guard i < parts else { return }
                body(i)
                ss_atomic_fetch_add(counters + 1, 1)
            }
        }
        var finished: Bool { ss_atomic_load(counters + 1) >= parts }
    }

    /// What the workers share with the pool.
    fileprivate final class State: @unchecked Sendable {
        /// Bumped for every job and at shutdown; workers spin on it.
        let generation: UnsafeMutablePointer<Int>
        let lock = NSCondition()
        var current: Job?
        var sleepers = 0
        var stopping = false
        init() {
            generation = .allocate(capacity: 1)
            generation.initialize(to: 0)
        }
        deinit { generation.deallocate() }
    }

    private let state = State()
    private let busy = NSLock()

    /// - Parameters:
    ///   - threads: compute threads including the caller (at least 1; 1 means no workers).
    ///   - spinSeconds: how long an idle worker spins before it parks.
    ///   - minimumSplitSeconds: estimated single-thread time from which a call is split (0 splits
    ///     every call that has more than one panel, which tests use).
    ///   - minimumTokenSplitRows: fewest rows per part of a split by token rows (at least 1).
    public init(threads: Int, spinSeconds: Double = 0.0015, minimumSplitSeconds: Double = KernelPool.splitThresholdSeconds,
                minimumTokenSplitRows: Int = KernelPool.tokenSplitRows) {
        threadCount = max(1, threads)
        self.spinSeconds = spinSeconds
        self.minimumSplitSeconds = minimumSplitSeconds
        self.minimumTokenSplitRows = max(1, minimumTokenSplitRows)
        for i in 1..<threadCount {
            let shared = state, spin = spinSeconds
            let name = "sparse-serve-kernel-\(i)"
            let t = Thread {
                _ = ss_set_thread_name(name)  // "sparse-serve-ke…" in top, gdb and /proc
                KernelPool.workerLoop(shared, spinSeconds: spin)
            }
            t.name = name
            t.stackSize = 1 << 20
            t.start()
        }
    }

    deinit {
        state.lock.lock()
        state.stopping = true
        ss_atomic_fetch_add(state.generation, 1)
        state.lock.broadcast()
        state.lock.unlock()
    }

    /// Runs `body(0)`, …, `body(parts - 1)` across the pool (the caller included) and returns when
    /// all are done. Parts may run in any order and concurrently.
    public func run(parts: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard parts > 1, threadCount > 1, busy.try() else {
            for i in 0..<max(0, parts) { body(i) }
            return
        }
        defer { busy.unlock() }
        let job = Job(body, parts: parts)
        state.lock.lock()
        state.current = job
        ss_atomic_fetch_add(state.generation, 1)
        if state.sleepers > 0 { state.lock.broadcast() }
        state.lock.unlock()
        job.work()
        while !job.finished { ss_cpu_relax() }
        state.lock.lock()
        state.current = nil
        state.lock.unlock()
    }

    /// Whether a call worth `flops` of work (counted as the kernel executes it, 2 per multiply-add)
    /// should be split: its single-thread time, estimated at ~40 GFLOP/s for one or two rows
    /// (bandwidth-bound GEMV) and ~100 GFLOP/s otherwise, is at least `minimumSplitSeconds`.
    public func shouldSplit(flops: Double, rows: Int) -> Bool {
        guard threadCount > 1 else { return false }
        let rate = rows <= 2 ? 40e9 : 100e9
        return flops / rate >= minimumSplitSeconds
    }

    /// Parts per thread when an operation is split: more parts than threads, claimed dynamically,
    /// so a thread that is descheduled (the machine is shared) holds up only a small part.
    public static let partsPerThread = 4

    /// Splits `units` (e.g. 16-row output panels) into up to `partsPerThread × threadCount`
    /// contiguous, nearly equal ranges and runs `body` on each across the pool; unsplit, one range
    /// runs on the caller.
    public func forEachRange(units: Int, split: Bool, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        guard units > 0 else { return }
        let parts = split && threadCount > 1 ? min(Self.partsPerThread * threadCount, units) : 1
        if parts <= 1 {
            body(0..<units)
            return
        }
        run(parts: parts) { part in
            let lower = units * part / parts, upper = units * (part + 1) / parts
            if lower < upper { body(lower..<upper) }
        }
    }

    private static func workerLoop(_ state: State, spinSeconds: Double) {
        var seen = ss_atomic_load(state.generation)
        while true {
            let spinUntil = DispatchTime.now().uptimeNanoseconds + UInt64(spinSeconds * 1e9)
            var spins = 0
            while ss_atomic_load(state.generation) == seen {
                ss_cpu_relax()
                spins += 1
                if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds > spinUntil {
                    state.lock.lock()
                    state.sleepers += 1
                    while ss_atomic_load(state.generation) == seen { state.lock.wait() }
                    state.sleepers -= 1
                    state.lock.unlock()
                }
            }
            state.lock.lock()
            let job = state.current, stopping = state.stopping
            seen = ss_atomic_load(state.generation)
            state.lock.unlock()
            if stopping { return }
            job?.work()
        }
    }
}

/// Raw pointers handed to pool workers; the caller keeps the memory alive until `run` returns.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafePointer<Float>
    init(_ p: UnsafePointer<Float>) { pointer = p }
}

struct UnsafeSendableMutablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}
