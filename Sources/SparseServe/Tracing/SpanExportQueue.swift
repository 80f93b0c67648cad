import Foundation
import Logging

/// The bounded queue between finished spans and the exporter thread. `push` is a lock and an
/// append (a full queue drops the span and counts it); the exporter takes batches of up to
/// `batchSize`, when that many wait or `scheduleDelay` passed. Settings follow OpenTelemetry's
/// batch span processor (`OTEL_BSP_*`).
public final class SpanExportQueue: @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        public var maxQueueSize = 2048
        public var batchSize = 512
        /// Seconds between exports when fewer than `batchSize` spans wait.
        public var scheduleDelay = 5.0
        public init() {}

        /// The defaults, with `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and
        /// `OTEL_BSP_SCHEDULE_DELAY` (ms) applied where they are valid numbers.
        public static func from(environment env: [String: String]) -> Settings {
            var s = Settings()
            if let v = env["OTEL_BSP_MAX_QUEUE_SIZE"].flatMap(Int.init), v > 0 { s.maxQueueSize = min(v, 1 << 20) }
            if let v = env["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"].flatMap(Int.init), v > 0 { s.batchSize = v }
            s.batchSize = min(s.batchSize, s.maxQueueSize)
            if let v = env["OTEL_BSP_SCHEDULE_DELAY"].flatMap(Double.init), v >= 0 { s.scheduleDelay = min(max(v, 10), 3_600_000) / 1000 }
            return s
        }
    }

    public let settings: Settings
    private let condition = NSCondition()
    private var spans: [FinishedSpan] = []
    private var dropped = 0
    private var flushRequested = false
    private var closed = false

    public init(settings: Settings = Settings()) {
        self.settings = settings
        spans.reserveCapacity(settings.maxQueueSize)
    }

    /// Queues a finished span, or drops and counts it when the queue is full or closed.
    public func push(_ span: FinishedSpan) {
        condition.lock()
        guard spans.count < settings.maxQueueSize, !closed else {
            dropped += 1
            condition.unlock()
            return
        }
        spans.append(span)
        if spans.count == settings.batchSize { condition.signal() }
        condition.unlock()
    }

    /// Asks the exporter to send what waits without waiting for a full batch.
    public func flushSoon() {
        condition.lock()
        flushRequested = true
        condition.signal()
        condition.unlock()
    }

    /// Stops taking spans; `next` then returns what is left and reports `closed`.
    public func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }

    /// One batch for the exporter, blocking until `batchSize` spans wait, the schedule delay passed
    /// with at least one waiting, a flush was asked, or the queue was closed. `dropped` is the count
    /// of spans the full queue refused since the last call.
    public func next() -> (batch: [FinishedSpan], dropped: Int, closed: Bool) {
        condition.lock()
        defer { condition.unlock() }
        var deadline = Date(timeIntervalSinceNow: settings.scheduleDelay)
        while spans.count < settings.batchSize && !closed && !flushRequested {
            if !condition.wait(until: deadline) {
                if !spans.isEmpty { break }
                deadline = Date(timeIntervalSinceNow: settings.scheduleDelay)
            }
        }
        flushRequested = false
        let batch: [FinishedSpan]
        if spans.count <= settings.batchSize {
            batch = spans  // the whole buffer moves out: no span is copied
            spans = []
            spans.reserveCapacity(settings.batchSize)
        } else {
            batch = Array(spans.prefix(settings.batchSize))
            spans.removeFirst(settings.batchSize)
        }
        let lost = dropped
        dropped = 0
        return (batch, lost, closed && spans.isEmpty)
    }

    /// Spans waiting now.
    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return spans.count
    }
}

/// The exporter thread: takes batches from the queue, encodes them as OTLP protobuf and posts them
/// to the collector. Spans lost to a full queue or a failed post are counted in
/// `sparseserve_tracing_spans_dropped_total` and reported in the log at most every 10 s.
public final class SpanExporter: @unchecked Sendable {
    public let queue: SpanExportQueue
    public let tracer: SpanExportTracer
    private let encoder: OTLPTraceEncoder
    private let client: OTLPHTTPClient
    private let metrics: ServerMetrics
    private let logger: Logger
    private let done = DispatchSemaphore(value: 0)
    private var lastWarning = Date.distantPast

    /// Starts exporting what `tracer` records to `settings.tracesURL`, with the batch and exporter
    /// settings of `environment` (`OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `..._HEADERS`).
    public init(_ settings: TracingSettings, environment: [String: String], metrics: ServerMetrics, logger: Logger) throws {
        queue = SpanExportQueue(settings: .from(environment: environment))
        tracer = SpanExportTracer(queue: queue, sampler: settings.sampler)
        encoder = OTLPTraceEncoder(resource: OTLPTraceEncoder.resource(serviceName: settings.serviceName, environment: environment))
        client = try OTLPHTTPClient(url: settings.tracesURL, environment: environment)
        self.metrics = metrics
        self.logger = logger
        metrics.countDroppedSpans(0, reason: .queueFull)
        let thread = Thread { [self] in run() }
        thread.name = "sparse-serve.otlp-export"
        thread.start()
    }

    private func run() {
        while true {
            let (batch, lost, closed) = queue.next()
            if lost > 0 {
                metrics.countDroppedSpans(lost, reason: .queueFull)
                warn("spans dropped: the export queue was full", ["dropped_count": "\(lost)", "queue_size": "\(queue.settings.maxQueueSize)"])
            }
            if !batch.isEmpty { export(batch) }
            if closed { break }
        }
        client.close()
        done.signal()
    }

    private func export(_ batch: [FinishedSpan]) {
        let body = encoder.encode(batch)
        do {
            try client.post(body)
        } catch {
            metrics.countDroppedSpans(batch.count, reason: .exportFailed)
            warn("spans dropped: export failed", ["batch_size": "\(batch.count)", "error": "\(error)"])
        }
    }

    private func warn(_ message: Logger.Message, _ metadata: Logger.Metadata) {
        let now = Date()
        guard now.timeIntervalSince(lastWarning) >= 10 else { return }
        lastWarning = now
        logger.warning("OTLP exporter: \(message)", metadata: metadata)
    }

    /// Sends what is queued (waiting at most `timeout` seconds) and ends the thread.
    public func stop(timeout: Double = 5) {
        queue.close()
        _ = done.wait(timeout: .now() + timeout)
    }
}
