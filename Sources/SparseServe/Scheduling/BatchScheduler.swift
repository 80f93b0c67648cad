import Foundation
import SparseModels

/// Dynamic batching settings of one endpoint (`"batching"` in its config).
public struct BatchingConfig: Sendable, Equatable {
    /// Rows (first input dimension) one forward pass may hold; 1 turns batching off.
    public var maxBatchSize = 32
    /// Tokens one forward pass may hold (text encoders; TEI's `max_batch_tokens`), beside
    /// `maxBatchSize`; nil = no token budget. A request over the budget runs alone, never refused.
    public var maxBatchTokens: Int?
    /// How long the oldest waiting request may be held to let a batch fill. 0 = never wait: a batch
    /// is whatever queued up while the compute threads were busy ("natural" batching).
    public var maxQueueDelayMicroseconds = 0
    /// Requests waiting in this endpoint's queue before new ones are refused.
    public var maxQueueSize = 256
    /// When one of these row counts is reachable, the batch is cut there (may be empty).
    public var preferredBatchSizes: [Int] = []
    /// Status for a refused request: 429 (default) or 503.
    public var rejectStatus = 429
    /// Run a request at once when no batch of this endpoint is queued or running, instead of
    /// holding it for `maxQueueDelayMicroseconds`: a lone client pays no batching delay, and
    /// under load requests still gather while the previous batch runs (the next batch starts
    /// as soon as it finishes). false = always wait for the delay or a full batch (Triton's rule).
    public var dispatchWhenIdle = true
    public init() {}
}

/// A decoded request waiting to run, with the way to answer it.
struct PendingInference {
    var request: InferenceRequest
    var rows: Int
    /// Each input's shape without the batch dimension, by name; only equal signatures share a batch.
    var signature: [String: [Int]]
    /// Tokens the request holds (text encoders; 0 when the model has no tokens), for `maxBatchTokens`.
    var tokens = 0
    var arrived: UInt64
    var deadline: UInt64?
    var isCancelled: @Sendable () -> Bool
    /// Called with the outcome and when its forward pass started (uptime ns; for the queue and
    /// compute time metrics — a batch's start, not the moment its result arrives).
    var complete: @Sendable (Result<[String: Tensor], Error>, _ computeStarted: UInt64) -> Void
    /// The request's trace and when it reached the batcher (uptime ns), for `traceForward`: a
    /// stored reference, not a closure allocated per traced request.
    var trace: RequestTrace? = nil
    var enqueued: UInt64 = 0

    /// Records the forward pass the request ran in (its `queue wait` for the batch and its
    /// `batch forward`), before `complete`, when the request is traced.
    func traceForward(_ pass: @autoclosure () -> BatchForward) {
        guard let trace else { return }
        let pass = pass()
        trace.record("queue wait", from: enqueued, to: pass.started) { $0.set("sparseserve.queue", "batch") }
        trace.forward(pass)
    }
}

/// One forward pass: when it ran (uptime ns) and what it held.
struct BatchForward: Sendable {
    var started: UInt64
    var finished: UInt64
    var requests: Int
    var rows: Int
    /// Tokens of text requests; a row of a model without tokens counts as one.
    var tokens: Int
}

extension BatchForward {
    /// A pass over `batch` that started at `started` and ends now.
    init(started: UInt64, _ batch: [PendingInference], rows: Int) {
        self.init(started: started, finished: DispatchTime.now().uptimeNanoseconds, requests: batch.count, rows: rows,
                  tokens: batch.reduce(0) { $0 + ($1.tokens > 0 ? $1.tokens : $1.rows) })
    }
}

/// Coalesces concurrent requests for one model into forward passes of up to `maxBatchSize` rows
/// (inputs concatenated along the first dimension, outputs split back). Batches run as jobs on the
/// shared `ComputeQueue` in the endpoint's lane, so endpoints share the compute threads in turn.
final class BatchScheduler: @unchecked Sendable {
    let config: BatchingConfig
    private let model: any InferenceModel
    private let compute: ComputeQueue
    private let lock = NSLock()
    private var pending: [PendingInference] = []
    /// The buffer `drain` fills with the requests it leaves queued and then trades with `pending`,
    /// so both keep their capacity: rebuilt each drain, `pending` regrew from empty every time,
    /// into allocations of ~1 KB and more that made glibc consolidate its fast bins (callgrind:
    /// ~0.4 growths per digits request at ~700–800 instructions each).
    private var spare: [PendingInference] = []
    private var timerArmed = false
    /// Drain jobs submitted to the compute queue and not finished yet.
    private var activeDrains = 0
    /// A dispatch was skipped because every drain slot was taken: the next drain to end starts one.
    private var drainWanted = false
    private let timerQueue = DispatchQueue(label: "sparse-serve.batch-timer")
    /// Called with the row count of every executed batch (metrics).
    var onBatch: (@Sendable (Int) -> Void)?

    /// The compute-queue lane (endpoint name) batches run in.
    let lane: String

    init(model: any InferenceModel, config: BatchingConfig, compute: ComputeQueue, lane: String = "") {
        self.lane = lane
        self.model = model
        self.config = config
        self.compute = compute
    }

    /// Whether this model's inputs and outputs are all batch-first, so requests can be concatenated.
    static func canBatch(_ model: any InferenceModel) -> Bool {
        (model.inputs + model.outputs).allSatisfy { $0.shape.first == -1 }
    }

    var queuedCount: Int {
        lock.lock(); defer { lock.unlock() }
        return pending.count
    }

    /// Queues a request; returns false when the queue is full (the caller answers `rejectStatus`).
    func enqueue(_ item: PendingInference) -> Bool {
        lock.lock()
        guard pending.count < config.maxQueueSize else {
            lock.unlock()
            return false
        }
        pending.append(item)
        let rows = pending.reduce(0) { $0 + $1.rows }, tokens = pending.reduce(0) { $0 + $1.tokens }
        let dispatchNow = config.maxQueueDelayMicroseconds == 0 || rows >= config.maxBatchSize
            || tokens >= (config.maxBatchTokens ?? .max) || (config.dispatchWhenIdle && activeDrains == 0)
        var armTimer = false
        if !dispatchNow && !timerArmed {
            timerArmed = true
            armTimer = true
        }
        lock.unlock()
        if dispatchNow {
            submitDrain()
        } else if armTimer {
            timerQueue.asyncAfter(deadline: .now() + .microseconds(config.maxQueueDelayMicroseconds)) { [self] in
                lock.lock()
                timerArmed = false
                lock.unlock()
                submitDrain()
            }
        }
        return true
    }

    /// Queues a drain job unless one per compute thread is already queued or running (then the
    /// next one to finish starts another): more would only wait in the endpoint's lane ahead of
    /// the decode jobs of new requests, which then reach the queue batches late (head-of-line).
    private func submitDrain() {
        lock.lock()
        guard activeDrains < compute.threadCount else {
            drainWanted = true
            lock.unlock()
            return
        }
        activeDrains += 1
        lock.unlock()
        compute.submitInternal(lane: lane) { [self] in
            self.drain()
            lock.lock()
            activeDrains -= 1
            // Requests that gathered while this batch ran go next, without waiting for a timer.
            let next = !pending.isEmpty && (drainWanted || (config.dispatchWhenIdle && activeDrains == 0))
            if next || pending.isEmpty { drainWanted = false }
            lock.unlock()
            if next { submitDrain() }
        }
    }

    /// Takes one batch from the queue (dropping cancelled and expired requests) and runs it: the
    /// oldest request, then every later one of the same signature and forward variant that still
    /// fits the row limit and the token budget (so short requests fill what long ones leave).
    func drain() {
        let now = DispatchTime.now().uptimeNanoseconds
        var expired: [PendingInference] = []
        var cancelled: [PendingInference] = []
        var batch: [PendingInference] = []
        lock.lock()
        var keep: [PendingInference] = []
        swap(&keep, &spare)  // (empty, with the capacity of an earlier queue)
        var rows = 0, tokens = 0
        let limit = cutPoint(available: pending.reduce(0) { $0 + $1.rows }), budget = config.maxBatchTokens ?? .max
        for item in pending {
            if item.isCancelled() { cancelled.append(item); continue }
            if let d = item.deadline, d <= now { expired.append(item); continue }
            if batch.isEmpty {
                batch.append(item)
                (rows, tokens) = (item.rows, item.tokens)
            } else if item.signature == batch[0].signature && item.request.forward?.name == batch[0].request.forward?.name
                        && rows + item.rows <= limit && tokens + item.tokens <= budget {
                batch.append(item)
                rows += item.rows
                tokens += item.tokens
            } else {
                keep.append(item)
            }
        }
        swap(&pending, &keep)
        keep.removeAll(keepingCapacity: true)  // (each request went to one of the lists above)
        swap(&spare, &keep)
        let more = !pending.isEmpty
        lock.unlock()

        for item in expired {
            let waited = Double(now - item.arrived) / 1000
            item.complete(.failure(ProtocolError(503, "queue timeout expired after \(Int(waited)) µs; the request was not executed", reason: .timeout)), now)
        }
        for item in cancelled {
            item.complete(.failure(ProtocolError(499, "the client closed the connection before the request ran", reason: .cancelled)), now)
        }
        if more { submitDrain() }
        guard !batch.isEmpty else { return }
        onBatch?(rows)
        run(batch, rows: rows)
    }

    /// The largest batch to cut given `available` queued rows: a preferred size when one fits.
    private func cutPoint(available: Int) -> Int {
        let cap = max(1, config.maxBatchSize)
        guard !config.preferredBatchSizes.isEmpty else { return cap }
        let fitting = config.preferredBatchSizes.filter { $0 <= min(cap, available) }
        return fitting.max() ?? cap
    }

    private func run(_ batch: [PendingInference], rows: Int) {
        let started = DispatchTime.now().uptimeNanoseconds
        let forward = batch[0].request.forward?.run ?? model.infer
        if batch.count == 1 {
            let item = batch[0]
            let result = Result { try forward(item.request.inputs) }
            item.traceForward(BatchForward(started: started, batch, rows: rows))
            item.complete(result, started)
            return
        }
        do {
            var merged: [String: Tensor] = [:]
            for name in batch[0].request.inputs.keys {
                merged[name] = try Tensor.concatenate(batch.map { $0.request.inputs[name]! })
            }
            let outputs = try forward(merged)
            let pass = BatchForward(started: started, batch, rows: rows)
            var offset = 0
            for item in batch {
                var mine: [String: Tensor] = [:]
                for (name, tensor) in outputs {
                    mine[name] = tensor.rows(offset..<(offset + item.rows))
                }
                offset += item.rows
                item.traceForward(pass)
                item.complete(.success(mine), started)
            }
        } catch {
            // One bad request must not fail its neighbours: rerun each alone.
            for item in batch {
                let alone = DispatchTime.now().uptimeNanoseconds
                let result = Result { try forward(item.request.inputs) }
                item.traceForward(BatchForward(started: alone, [item], rows: item.rows))
                item.complete(result, alone)
            }
        }
    }
}

extension Tensor {
    /// Rows per first-dimension entry × the rest of the shape.
    var rowCount: Int { shape.first ?? 1 }

    /// Concatenates tensors of equal trailing shape and datatype along the first dimension.
    static func concatenate(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw InvalidInputError("nothing to concatenate") }
        let tail = Array(first.shape.dropFirst())
        guard parts.allSatisfy({ Array($0.shape.dropFirst()) == tail && $0.datatype == first.datatype }) else {
            throw InvalidInputError("cannot batch tensors of different shapes")
        }
        let shape = [parts.reduce(0) { $0 + $1.rowCount }] + tail
        func join<T>(_ extract: (TensorStorage) -> [T]?) -> [T] { parts.flatMap { extract($0.storage) ?? [] } }
        let storage: TensorStorage
        switch first.storage {
        case .fp32: storage = .fp32(join { if case .fp32(let a) = $0 { return a }; return nil })
        case .fp64: storage = .fp64(join { if case .fp64(let a) = $0 { return a }; return nil })
        case .int32: storage = .int32(join { if case .int32(let a) = $0 { return a }; return nil })
        case .int64: storage = .int64(join { if case .int64(let a) = $0 { return a }; return nil })
        case .uint8: storage = .uint8(join { if case .uint8(let a) = $0 { return a }; return nil })
        case .bool: storage = .bool(join { if case .bool(let a) = $0 { return a }; return nil })
        case .bytes: storage = .bytes(join { if case .bytes(let a) = $0 { return a }; return nil })
        }
        return Tensor(shape: shape, storage: storage)
    }

    /// The sub-tensor of first-dimension entries `range`.
    func rows(_ range: Range<Int>) -> Tensor {
        let per = shape.dropFirst().reduce(1, *)
        let r = (range.lowerBound * per)..<(range.upperBound * per)
        let storage: TensorStorage
        switch self.storage {
        case .fp32(let a): storage = .fp32(Array(a[r]))
        case .fp64(let a): storage = .fp64(Array(a[r]))
        case .int32(let a): storage = .int32(Array(a[r]))
        case .int64(let a): storage = .int64(Array(a[r]))
        case .uint8(let a): storage = .uint8(Array(a[r]))
        case .bool(let a): storage = .bool(Array(a[r]))
        case .bytes(let a): storage = .bytes(Array(a[r]))
        }
        return Tensor(shape: [range.count] + shape.dropFirst(), storage: storage)
    }
}
