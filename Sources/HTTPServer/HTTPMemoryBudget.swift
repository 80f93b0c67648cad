import Foundation

/// A process-wide ceiling on the bytes held by request bodies: raw bytes as they are received and
/// decoded bytes as they are inflated, for every request from its head until its response is
/// written (so requests queued inside the application count too). A request that would go over
/// it is answered 503 with `Retry-After` instead of being read further.
///
/// Several `HTTPServer`s (e.g. plaintext and TLS listeners) can share one budget through
/// `HTTPServerConfiguration.bodyMemoryBudget`.
public final class HTTPMemoryBudget: @unchecked Sendable {
    /// Most bytes that may be held at once.
    public let limit: Int
    private let lock = NSLock()
    private var used = 0

    public init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// Bytes currently reserved.
    public var reservedBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return used
    }

    /// Reserves `bytes` if they fit under the limit; false (nothing reserved) otherwise.
    func tryReserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        lock.lock(); defer { lock.unlock() }
        guard bytes <= limit - used else { return false }
        used += bytes
        return true
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        lock.lock()
        used = max(0, used - bytes)
        lock.unlock()
    }
}

/// One request's share of an `HTTPMemoryBudget`. The server reserves the raw and decoded body
/// through it and releases everything when the response has been written or the connection
/// closes. A handler that builds large structures from the body (a parsed JSON tree, decoded
/// tensors) can charge them to the same budget with `reserve(_:)` and answer 503 when it fails.
public final class HTTPBodyAccount: @unchecked Sendable {
    private let budget: HTTPMemoryBudget
    private let lock = NSLock()
    private var held = 0
    private var finished = false

    init(budget: HTTPMemoryBudget) {
        self.budget = budget
    }

    /// Bytes this request holds.
    public var heldBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return held
    }

    /// Reserves `bytes` more for this request; false when the global budget has no room.
    /// Always false once the request is over (its reservation was given back).
    public func reserve(_ bytes: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !finished, budget.tryReserve(bytes) else { return false }
        held += max(0, bytes)
        return true
    }

    /// Gives back up to `bytes` of this request's reservation (e.g. a raw body once decoded).
    public func release(_ bytes: Int) {
        lock.lock()
        let amount = min(max(0, bytes), held)
        held -= amount
        lock.unlock()
        budget.release(amount)
    }

    /// Gives back everything this request holds; later reservations fail.
    func finish() {
        lock.lock()
        let amount = held
        held = 0
        finished = true
        lock.unlock()
        budget.release(amount)
    }
}
