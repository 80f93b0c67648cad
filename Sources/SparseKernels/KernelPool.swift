import CSparseKernels
import Foundation

/// Persistent compute workers that split one kernel call into parts (by output panels).
///
/// Hand-off is spin-then-park: after a job a worker spins on the job counter for `spinSeconds`
/// (a wake-up from a futex costs 100–150 µs on this VM, a spinning hand-off well under 1 µs), then
/// sleeps on a condition until the next job. The calling thread always takes parts itself, so a
/// pool of `threads` runs `threads` parts at once with `threads - 1` workers. Calls are serialised:
/// one split job at a time (a second caller runs its job alone instead of waiting).
public final class KernelPool: @unchecked Sendable {
    /// The pool kernels use unless given another. Its size is `SPARSESERVE_KERNEL_THREADS`, else
    /// what `configureShared(threads:)` set before first use, else the CPU count.
    public static var shared: KernelPool {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let pool = sharedPool { return pool }
        let threads = ProcessInfo.processInfo.environment["SPARSESERVE_KERNEL_THREADS"].flatMap(Int.init)
            ?? requestedSharedThreads ?? ProcessInfo.processInfo.activeProcessorCount
        let pool = KernelPool(threads: threads)
        sharedPool = pool
        return pool
    }

    /// Sets the shared pool's size; only effective before the pool is first used. The server calls
    /// it so compute threads × kernel threads stays within the cores (no oversubscription).
    public static func configureShared(threads: Int) {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if sharedPool == nil { requestedSharedThreads = max(1, threads) }
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedPool: KernelPool?
    nonisolated(unsafe) private static var requestedSharedThreads: Int?

    public let threadCount: Int
    public let spinSeconds: Double
    /// Minimum floating-point work (2·rows·K·N) before a call is split: ≈ 50 µs on one core.
    public static let splitThresholdFlops = 4_000_000

    /// One split call: its body, part count and its own claim/finish counters, so a worker that
    /// wakes late can only touch the job it saw (whose counters are exhausted), never a newer one.
    private final class Job: @unchecked Sendable {
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

    /// Bumped for every job; workers spin on it.
    private let generation: UnsafeMutablePointer<Int>
    private let busy = NSLock()
    private let park = NSCondition()
    private var current: Job?
    private var sleepers = 0

    public init(threads: Int, spinSeconds: Double = 0.0015) {
        threadCount = max(1, threads)
        self.spinSeconds = spinSeconds
        generation = .allocate(capacity: 1)
        generation.initialize(to: 0)
        for i in 1..<threadCount {
            let t = Thread { [unowned self] in self.worker() }
            t.name = "sparse-serve-kernel-\(i)"
            t.start()
        }
    }

    /// Runs `body(0..<parts)` across the pool and returns when every part is done.
    public func run(parts: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard parts > 1, threadCount > 1, busy.try() else {
            for i in 0..<parts { body(i) }
            return
        }
        defer { busy.unlock() }
        let job = Job(body, parts: parts)
        park.lock()
        current = job
        ss_atomic_fetch_add(generation, 1)
        if sleepers > 0 { park.broadcast() }
        park.unlock()
        job.work()
        while !job.finished { ss_cpu_relax() }
        park.lock()
        current = nil
        park.unlock()
    }

    private func worker() {
        var seen = ss_atomic_load(generation)
        while true {
            // Spin for the next job, then park.
            let spinUntil = DispatchTime.now().uptimeNanoseconds + UInt64(spinSeconds * 1e9)
            var spins = 0
            while ss_atomic_load(generation) == seen {
                ss_cpu_relax()
                spins += 1
                if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds > spinUntil {
                    park.lock()
                    sleepers += 1
                    while ss_atomic_load(generation) == seen { park.wait() }
                    sleepers -= 1
                    park.unlock()
                }
            }
            park.lock()
            let job = current
            seen = ss_atomic_load(generation)
            park.unlock()
            job?.work()
        }
    }
}

extension DenseWeights {
    /// As `apply`, split across `pool` by output panels when the call is large enough to pay.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, pool: KernelPool, isa: InstructionSet = .current) {
        let flops = 2 * rows * inputFeatures * outputFeatures
        let panels = (outputFeatures + Self.panelWidth - 1) / Self.panelWidth
        let parts = min(pool.threadCount, panels)
        guard flops >= KernelPool.splitThresholdFlops, parts > 1 else {
            return apply(x, rows: rows, inputStride: inputFeatures, into: y, outputStride: outputFeatures, activation: activation, isa: isa)
        }
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        pool.run(parts: parts) { [self] part in
            let p0 = panels * part / parts, p1 = panels * (part + 1) / parts
            let cols = (p0 * Self.panelWidth)..<min(outputFeatures, p1 * Self.panelWidth)
            guard !cols.isEmpty else { return }
            apply(xs.pointer, rows: rows, inputStride: inputFeatures, into: ys.pointer, outputStride: outputFeatures,
                  activation: activation, outputColumns: cols, isa: isa)
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
