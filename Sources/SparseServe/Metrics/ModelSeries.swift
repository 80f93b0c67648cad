import CoreMetrics
import Foundation

/// One model's cumulative inference counts and times, for the v2 statistics extension (the
/// Prometheus handles cannot be read back).
public struct InferenceTotals: Sendable, Equatable {
    public var successes = 0
    public var failures = 0
    /// Rows (batch entries) run, over successful requests.
    public var rows = 0
    /// Requests with a recorded timing, and their summed queue, compute and arrival-to-response seconds.
    public var timed = 0
    public var queueSeconds = 0.0
    public var computeSeconds = 0.0
    public var totalSeconds = 0.0
}

/// What a model exports beside its request counters, set when it is (re)loaded.
struct ModelFacts: Sendable {
    var version: String
    var architecture: String
    /// The compression method (the `compression` label of `sparseserve_model_info`).
    var compression: String
    var parameters: Double
    var bytes: Double
    var density: Double
    /// The batching queue's length, read at scrape time (nil: the model has no batcher).
    var queuedCount: (@Sendable () -> Int)?
}

/// The swift-metrics handles of one model (label `model`): made when the model is first seen, with
/// every outcome and failure reason at 0 so `rate()` sees the first requests, and destroyed
/// together when the model is unloaded.
final class ModelSeries: @unchecked Sendable {
    let name: String
    private let factory: any MetricsFactory
    private let lock = NSLock()
    private var totals = InferenceTotals()
    private let requests: [InferenceOutcome: Counter]
    private let failures: [FailureReason: Counter]
    private let rows: Counter
    private let queue: Recorder, compute: Recorder, total: Recorder
    /// Made by `publish`: model info and size gauges, the batch histogram and queue depth.
    private var published: [Recorder] = []
    private(set) var batchRows: Recorder?
    private var queueDepth: (gauge: Gauge, read: @Sendable () -> Int)?

    init(name: String, factory: any MetricsFactory) {
        self.name = name
        self.factory = factory
        let model = [("model", name)]
        requests = Dictionary(uniqueKeysWithValues: InferenceOutcome.allCases.map { outcome in
            (outcome, Counter(label: MetricCatalog.inferenceRequests, dimensions: model + [("outcome", outcome.rawValue)], factory: factory))
        })
        failures = Dictionary(uniqueKeysWithValues: FailureReason.allCases.map { reason in
            (reason, Counter(label: MetricCatalog.inferenceFailures, dimensions: model + [("reason", reason.rawValue)], factory: factory))
        })
        rows = Counter(label: MetricCatalog.inferenceRows, dimensions: model, factory: factory)
        queue = Recorder(label: MetricCatalog.queueSeconds, dimensions: model, factory: factory)
        compute = Recorder(label: MetricCatalog.computeSeconds, dimensions: model, factory: factory)
        total = Recorder(label: MetricCatalog.totalSeconds, dimensions: model, factory: factory)
    }

    /// One request that ended without running (a full queue): counted as a failure.
    func countFailure(_ reason: FailureReason) {
        requests[.failure]?.increment()
        failures[reason]?.increment()
        lock.lock()
        totals.failures += 1
        lock.unlock()
    }

    /// One answered request: its outcome, rows and times (seconds).
    func record(rows count: Int, queue q: Double, compute c: Double, total t: Double, failure: FailureReason?) {
        if let failure {
            requests[.failure]?.increment()
            failures[failure]?.increment()
        } else {
            requests[.success]?.increment()
            rows.increment(by: Int64(count))
        }
        queue.record(q)
        compute.record(c)
        total.record(t)
        lock.lock()
        if failure == nil { totals.successes += 1; totals.rows += count } else { totals.failures += 1 }
        totals.timed += 1
        totals.queueSeconds += q
        totals.computeSeconds += c
        totals.totalSeconds += t
        lock.unlock()
    }

    var snapshot: InferenceTotals {
        lock.lock(); defer { lock.unlock() }
        return totals
    }

    /// Sets the model's facts, replacing those of a previous load (its info line may differ).
    func publish(_ facts: ModelFacts) {
        let model = [("model", name)]
        func gauge(_ label: String, _ value: Double, _ extra: [(String, String)] = []) -> Recorder {
            let g = Gauge(label: label, dimensions: model + extra, factory: factory)
            g.record(value)
            return g
        }
        lock.lock()
        let previous = published
        published = []
        lock.unlock()
        for old in previous { old.destroy() }
        let info = gauge(MetricCatalog.modelInfo, 1, [("version", facts.version), ("architecture", facts.architecture),
                                                     ("compression", facts.compression)])
        var made = [info, gauge(MetricCatalog.modelParameters, facts.parameters), gauge(MetricCatalog.modelBytes, facts.bytes),
                    gauge(MetricCatalog.modelDensity, facts.density)]
        let depth = Gauge(label: MetricCatalog.batchQueueDepth, dimensions: model, factory: factory)
        depth.record(0)
        made.append(depth)
        var batch: Recorder?
        if facts.queuedCount != nil {
            batch = Recorder(label: MetricCatalog.batchRows, dimensions: model, factory: factory)
            made.append(batch!)
        }
        lock.lock()
        published = made
        batchRows = batch
        queueDepth = (depth, facts.queuedCount ?? { 0 })
        lock.unlock()
    }

    /// Reads the batching queue's length into its gauge (before a scrape).
    func refresh() {
        lock.lock()
        let depth = queueDepth
        lock.unlock()
        if let depth { depth.gauge.record(Double(depth.read())) }
    }

    /// Removes every series of this model from the exposition.
    func destroy() {
        lock.lock()
        let made = published
        published = []
        queueDepth = nil
        batchRows = nil
        lock.unlock()
        for r in made { r.destroy() }
        for c in requests.values { c.destroy() }
        for c in failures.values { c.destroy() }
        rows.destroy()
        for r in [queue, compute, total] { r.destroy() }
    }
}
