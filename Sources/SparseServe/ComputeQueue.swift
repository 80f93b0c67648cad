import Foundation

/// A fixed set of compute threads that run inference jobs, separate from the HTTP I/O queues.
/// The queue of waiting jobs is bounded: `submit` refuses work beyond `maxQueueSize` so that
/// overload turns into a fast 503 instead of unbounded memory growth.
public final class ComputeQueue: @unchecked Sendable {
    public typealias Job = @Sendable () -> Void

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
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
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "sparse-serve-compute-\(i)"
            thread.stackSize = 8 << 20
            self.threads.append(thread)
            thread.start()
        }
    }


    /// Jobs waiting for a thread (not counting running ones).
    public var queuedCount: Int {
        condition.lock(); defer { condition.unlock() }
        return jobs.count - head
    }

    /// Jobs currently running.
    public var runningCount: Int {
        condition.lock(); defer { condition.unlock() }
        return running
    }

    /// Enqueues a new request's job; returns false (and drops it) when the queue is full or stopping.
    @discardableResult
    public func submit(_ job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, jobs.count - head < maxQueueSize else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Enqueues follow-up work for requests already admitted (a batch to run); never refused.
    @discardableResult
    func submitInternal(_ job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Refuses new requests from now on; admitted work still runs. The threads stay parked until
    /// the process exits.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.unlock()
    }

    private func workerLoop() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            running += 1
            condition.unlock()
            job()
            condition.lock()
            running -= 1
            condition.unlock()
        }
    }
}
