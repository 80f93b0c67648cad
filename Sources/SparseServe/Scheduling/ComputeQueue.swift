import Foundation

/// A fixed set of compute threads that run inference jobs, separate from the HTTP I/O queues.
///
/// Jobs wait in one FIFO lane per endpoint and the threads take lanes in turn (round robin), so an
/// endpoint flooded with requests cannot starve the others: each busy lane gets every k-th free
/// thread. The total of waiting jobs is bounded: `submit` refuses work beyond `maxQueueSize`, so
/// overload turns into a fast 503 instead of unbounded memory growth.
public final class ComputeQueue: @unchecked Sendable {
    public typealias Job = @Sendable () -> Void

    /// One endpoint's waiting jobs (a ring-friendly FIFO).
    private struct Lane {
        var jobs: [Job] = []
        var head = 0
        var isEmpty: Bool { head == jobs.count }
        mutating func pop() -> Job {
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    private let condition = NSCondition()
    private var lanes: [String: Lane] = [:]
    /// Lanes with waiting jobs, in the order they will be served.
    private var turn: [String] = []
    private var queued = 0
    private var stopping = false
    private var threads: [Thread] = []
    private var running = 0
    public let threadCount: Int
    public let maxQueueSize: Int

    public init(threads: Int, maxQueueSize: Int) {
        precondition(threads >= 1)
        self.threadCount = threads
        self.maxQueueSize = maxQueueSize
        for i in 0..<threads {
            // Strong: the workers live as long as the process; an unowned reference crashed a
            // start-up that failed (the queue was freed before a worker first ran).
            let thread = Thread {
                KernelThreadName.set("compute-\(i)")
                self.workerLoop()
            }
            thread.name = "sparse-serve-compute-\(i)"
            thread.stackSize = 8 << 20
            self.threads.append(thread)
            thread.start()
        }
    }

    /// Jobs waiting for a thread (not counting running ones).
    public var queuedCount: Int {
        condition.lock(); defer { condition.unlock() }
        return queued
    }

    /// Jobs currently running.
    public var runningCount: Int {
        condition.lock(); defer { condition.unlock() }
        return running
    }

    /// Enqueues a new request's job in `lane` (the endpoint name); returns false (and drops it)
    /// when the queue is full or stopping.
    @discardableResult
    public func submit(lane: String = "", _ job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, queued < maxQueueSize else { return false }
        append(job, to: lane)
        return true
    }

    /// Enqueues follow-up work for requests already admitted (a batch to run); never refused.
    func submitInternal(lane: String = "", _ job: @escaping Job) {
        condition.lock()
        defer { condition.unlock() }
        append(job, to: lane)
    }

    /// Refuses new requests from now on; admitted work still runs. The threads stay parked until
    /// the process exits.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.unlock()
    }

    /// Caller holds the lock.
    private func append(_ job: @escaping Job, to lane: String) {
        if lanes[lane, default: Lane()].isEmpty { turn.append(lane) }
        lanes[lane, default: Lane()].jobs.append(job)
        queued += 1
        condition.signal()
    }

    private func workerLoop() {
        while true {
            condition.lock()
            while turn.isEmpty { condition.wait() }
            let lane = turn.removeFirst()
            let job = lanes[lane]!.pop()
            // An emptied lane stays (one per endpoint name), keeping its jobs' capacity: removed,
            // it regrew from empty at the next request, into ~1 KB allocations that made glibc
            // consolidate its fast bins (callgrind: ~0.3 growths per digits request, ~750 instructions each).
            if !lanes[lane]!.isEmpty { turn.append(lane) }
            queued -= 1
            running += 1
            condition.unlock()
            job()
            condition.lock()
            running -= 1
            condition.unlock()
        }
    }
}

/// Names the calling thread for the kernel (what top, perf and /proc/PID/task/*/comm show;
/// `Thread.name` does not reach it here), where /proc/thread-self exists. At most 15 bytes are kept.
enum KernelThreadName {
    static func set(_ name: String) {
        guard let file = fopen("/proc/thread-self/comm", "w") else { return }
        fputs(name, file)
        fclose(file)
    }
}
