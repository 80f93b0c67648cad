import CoreMetrics
import Foundation
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory

/// The metrics SparseServe exports, named with the `sparseserve_` prefix and base units. Every
/// counter, gauge and histogram is a swift-metrics handle made by `factory`, a swift-prometheus
/// factory over `registry`, which renders `GET /metrics`. Handles are made once and cached (per
/// model in `ModelSeries`, per route and status for HTTP responses).
///
/// Code embedding SparseServe can report its own metrics on the same page by bootstrapping
/// `MetricsSystem` with `factory`.
public final class ServerMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory
    private let lock = NSLock()
    private var models: [String: ModelSeries] = [:]
    private var loaded: [String: Gauge] = [:]
    private var loadFailures: [String: Counter] = [:]
    private var http: [HTTPSeriesKey: Counter] = [:]
    private let spansDropped: [SpanDropReason: Counter]
    /// Gauges read at scrape time (queue depth, open connections).
    private var sampled: [(gauge: Gauge, read: @Sendable () -> Double)] = []
    private let configReloadFailures: Counter
    private let process: ProcessSeries

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets = MetricCatalog.buckets
        self.factory = factory
        configReloadFailures = Counter(label: MetricCatalog.configReloadFailures, factory: factory)
        Gauge(label: MetricCatalog.buildInfo, dimensions: [("version", InferenceService.version)], factory: factory).record(1)
        process = ProcessSeries(factory: factory)
        spansDropped = Dictionary(uniqueKeysWithValues: SpanDropReason.allCases.map { reason in
            (reason, Counter(label: MetricCatalog.spansDropped, dimensions: [("reason", reason.rawValue)], factory: factory))
        })
        // Series that exist before any traffic, at 0, so rate() sees the first responses.
        for route in RouteLabel.allCases { http[HTTPSeriesKey(route: route, status: 200)] = httpCounter(route, 200) }
    }

    /// The text of `GET /metrics` (Prometheus text format 0.0.4).
    public func exposition() -> [UInt8] {
        lock.lock()
        let series = Array(models.values), gauges = sampled
        lock.unlock()
        for s in series { s.refresh() }
        for g in gauges { g.gauge.record(g.read()) }
        process.refresh()
        return PrometheusExposition.render(registry)
    }

    /// A gauge with no labels whose value `read` gives at every scrape.
    func sample(_ name: String, read: @escaping @Sendable () -> Double) {
        let gauge = Gauge(label: name, factory: factory)
        gauge.record(read())
        lock.lock()
        sampled.append((gauge, read))
        lock.unlock()
    }

    /// The series of `model`, made on first use.
    func series(_ model: String) -> ModelSeries {
        lock.lock(); defer { lock.unlock() }
        if let s = models[model] { return s }
        let s = ModelSeries(name: model, factory: factory)
        models[model] = s
        return s
    }

    /// A model was (re)loaded: its facts are published and `model_loaded` is 1.
    func publishModel(_ model: String, _ facts: ModelFacts) {
        series(model).publish(facts)
        setLoaded(model, 1)
    }

    /// An unloaded model: every series labelled with it goes; a config-file endpoint keeps
    /// `model_loaded 0` (its slot stays in the index).
    func removeModel(_ model: String, keepLoadedAtZero: Bool) {
        lock.lock()
        let s = models.removeValue(forKey: model), failures = loadFailures.removeValue(forKey: model)
        let gauge = keepLoadedAtZero ? nil : loaded.removeValue(forKey: model)
        lock.unlock()
        s?.destroy()
        failures?.destroy()
        gauge?.destroy()
        if keepLoadedAtZero { setLoaded(model, 0) }
    }

    private func setLoaded(_ model: String, _ value: Double) {
        lock.lock()
        let gauge = loaded[model] ?? Gauge(label: MetricCatalog.modelLoaded, dimensions: [("model", model)], factory: factory)
        loaded[model] = gauge
        lock.unlock()
        gauge.record(value)
    }

    /// One failed load of `model` (start-up, repository load or SIGHUP reload).
    func countLoadFailure(_ model: String) {
        lock.lock()
        let counter = loadFailures[model] ?? Counter(label: MetricCatalog.modelLoadFailures, dimensions: [("model", model)], factory: factory)
        loadFailures[model] = counter
        lock.unlock()
        counter.increment()
    }

    /// One rejected config reload (SIGHUP with an invalid file).
    public func countConfigReloadFailure() { configReloadFailures.increment() }

    /// One HTTP response.
    func countHTTP(_ route: RouteLabel, status: Int) {
        let key = HTTPSeriesKey(route: route, status: status)
        lock.lock()
        let counter = http[key] ?? httpCounter(route, status)
        http[key] = counter
        lock.unlock()
        counter.increment()
    }

    private func httpCounter(_ route: RouteLabel, _ status: Int) -> Counter {
        Counter(label: MetricCatalog.httpRequests, dimensions: [("route", route.rawValue), ("code", String(status))], factory: factory)
    }

    /// Executed batch sizes of a batching model.
    func recordBatch(_ rows: Int, model: String) { series(model).batchRows?.record(rows) }

    /// Spans the OTLP exporter could not deliver (0 while tracing is off).
    public func countDroppedSpans(_ count: Int, reason: SpanDropReason) {
        spansDropped[reason]?.increment(by: Int64(count))
    }

    /// The cumulative counts and times of `model` (the v2 statistics extension).
    func statistics(_ model: String) -> InferenceTotals {
        lock.lock()
        let s = models[model]
        lock.unlock()
        return s?.snapshot ?? InferenceTotals()
    }
}

/// Why a finished span did not reach the collector (`reason` of `sparseserve_tracing_spans_dropped_total`).
public enum SpanDropReason: String, Sendable, CaseIterable {
    /// The bounded export queue was full (the collector is slow or down).
    case queueFull = "queue_full"
    /// The export of a batch failed (refused, timed out, or answered with an error).
    case exportFailed = "export_failed"
}

private struct HTTPSeriesKey: Hashable {
    var route: RouteLabel
    var status: Int
}

/// The `outcome` label of `sparseserve_inference_requests_total`.
enum InferenceOutcome: String, Sendable, CaseIterable {
    case success, failure
}

extension ServerMetrics {
    /// One finished inference request with no timing (a refusal before it ran).
    func countRejected(_ model: String, _ reason: FailureReason) { series(model).countFailure(reason) }
    /// Inference requests of `model` so far with `outcome`.
    func inferenceCount(_ model: String, _ outcome: InferenceOutcome) -> Int {
        let totals = statistics(model)
        return outcome == .success ? totals.successes : totals.failures
    }
}
