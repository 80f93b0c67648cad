import Foundation
import Logging

/// Encoded spans waiting for export: each a `ScopeSpans.spans` entry (tag, length, `Span`), back
/// to back in memory allocated once and reused, so queueing a span is a copy of its bytes.
public final class SpanBatch: @unchecked Sendable {
    let memory: UnsafeMutablePointer<UInt8>
    public let capacity: Int
    @exclusivity(unchecked) public private(set) var byteCount = 0
    @exclusivity(unchecked) public private(set) var spanCount = 0
    /// The export batch size, 0 for none: appends note where the last whole multiple of it
    /// ends (`marked`), so splitting off whole batches needs no walk over every span.
    let batchSpans: Int
    /// The byte offset and span count just past the last span whose count is a multiple of `batchSpans`.
    @exclusivity(unchecked) private(set) var marked = (bytes: 0, spans: 0)

    init(capacity: Int, batchSpans: Int = 0) {
        self.capacity = capacity
        self.batchSpans = batchSpans
        memory = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    }

    deinit { memory.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: memory, count: byteCount) }

    /// Appends the bytes of `spans` encoded spans (one by default); false when they do not fit.
    func append(_ span: UnsafeRawBufferPointer, spans: Int = 1) -> Bool {
        guard span.count > 0, byteCount + span.count <= capacity else { return false }
        UnsafeMutableRawPointer(memory + byteCount).copyMemory(from: span.baseAddress!, byteCount: span.count)
        let before = (bytes: byteCount, spans: spanCount)
        byteCount += span.count
        spanCount += spans
        if batchSpans > 0 && spanCount / batchSpans > before.spans / batchSpans {
            var (i, n) = before
            while n < spanCount / batchSpans * batchSpans { (i, n) = (end(ofSpanAt: i), n + 1) }
            marked = (i, n)
        }
        return true
    }

    /// Encodes one span with `body` in place after the others; false when it did not fit.
    func append(_ body: (inout SpanWriter) -> Void) -> Bool {
        var w = SpanWriter(UnsafeMutableBufferPointer(start: memory + byteCount, count: capacity - byteCount))
        body(&w)
        guard !w.overflowed, w.count > 0 else { return false }
        byteCount += w.count
        spanCount += 1
        if batchSpans > 0 && spanCount % batchSpans == 0 { marked = (byteCount, spanCount) }
        return true
    }

    func reset() { (byteCount, spanCount, marked) = (0, 0, (0, 0)) }

    /// The offset just past the span that starts at `i` (its tag, length and bytes).
    private func end(ofSpanAt start: Int) -> Int {
        var i = start + 1, length = 0, shift = 0  // (after the tag)
        while true {
            let c = memory[i]
            i += 1
            length |= Int(c & 0x7F) << shift
            shift += 7
            if c < 0x80 { break }
        }
        return i + length
    }

    /// Consecutive runs of at most `spans` spans, in order: their byte ranges and span counts.
    public func chunks(of spans: Int) -> [(bytes: Range<Int>, spans: Int)] {
        if spanCount <= spans { return byteCount > 0 ? [(0..<byteCount, spanCount)] : [] }  // one post: no walk
        var out: [(bytes: Range<Int>, spans: Int)] = [], start = 0, i = 0, n = 0
        while i < byteCount {
            i = end(ofSpanAt: i)
            n += 1
            if n == spans { out.append((start..<i, n)); (start, n) = (i, 0) }
        }
        if start < byteCount { out.append((start..<byteCount, n)) }
        return out
    }

    /// Moves the spans after the first `kept` to `other` (empty), in order; this batch keeps the first `kept`.
    func moveSpans(after kept: Int, to other: SpanBatch) {
        precondition(other.byteCount == 0 && kept <= spanCount)
        var i = 0
        if marked.spans == kept { i = marked.bytes } else { for _ in 0..<kept { i = end(ofSpanAt: i) } }
        _ = other.append(UnsafeRawBufferPointer(start: memory + i, count: byteCount - i), spans: spanCount - kept)
        (byteCount, spanCount) = (i, kept)
        if marked.spans > kept { marked = (0, 0) }
    }
}

/// The bounded queue between finished spans and the exporter thread. `push` is a lock and a copy
/// of the span's bytes (a full queue drops the span and counts it); the exporter is woken once
/// per `batchSize` spans (or half the byte budget), else after `scheduleDelay`, and takes what
/// waits by swapping buffers (whole batches: a partial one stays queued). Settings follow OpenTelemetry's batch span processor (`OTEL_BSP_*`).
public final class SpanExportQueue: @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        public var maxQueueSize = 2048
        public var batchSize = 512
        /// Seconds between exports when fewer than `batchSize` spans wait.
        public var scheduleDelay = 5.0
        public init() {}

        /// Bytes the queue holds at most: 512 per span on average (a request's spans take 150–300).
        public var maxQueueBytes: Int { max(maxQueueSize * 512, 64 << 10) }

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
    // (guarded by `condition`; the compiler's run-time exclusivity checks are left out)
    @exclusivity(unchecked) private var pending: SpanBatch
    @exclusivity(unchecked) private var spare: SpanBatch?
    @exclusivity(unchecked) private var dropped = 0
    @exclusivity(unchecked) private var flushRequested = false
    @exclusivity(unchecked) private var closed = false
    /// Ids of the spans `record` encodes here: xoshiro256**, seeded once from the system generator, drawn under the lock.
    @exclusivity(unchecked) private var ids = Xoshiro256(seed: SystemRandomNumberGenerator())

    public init(settings: Settings = Settings()) {
        self.settings = settings
        pending = SpanBatch(capacity: settings.maxQueueBytes, batchSpans: settings.batchSize)
    }

    /// Queues one encoded span, or drops and counts it when the queue is full or closed.
    public func push(_ span: UnsafeRawBufferPointer) { push(span, spans: 1) }

    /// Queues `spans` encoded spans lying back to back in `bytes` (a request's, in one step), or
    /// drops and counts them all when they do not fit or the queue is closed.
    public func push(_ bytes: UnsafeRawBufferPointer, spans: Int) {
        guard spans > 0 else { return }
        condition.lock()
        let before = (spans: pending.spanCount, bytes: pending.byteCount)
        guard before.spans + spans <= settings.maxQueueSize, !closed, pending.append(bytes, spans: spans) else {
            dropped += spans
            condition.unlock()
            return
        }
        wakeIfBatchReady(before)
        condition.unlock()
    }

    /// Queues `spans` encoded spans lying in `bytes` (a request's children) and then one more span
    /// encoded by `last` in place (its server span), under one lock; what does not fit is dropped and counted.
    func push(_ bytes: UnsafeRawBufferPointer, spans: Int, last: (inout SpanWriter) -> Void) {
        condition.lock()
        let before = (spans: pending.spanCount, bytes: pending.byteCount)
        guard before.spans + spans + 1 <= settings.maxQueueSize, !closed else {
            dropped += spans + 1
            condition.unlock()
            return
        }
        if spans > 0 && !pending.append(bytes, spans: spans) { dropped += spans }
        if !pending.append(last) { dropped += 1 }
        wakeIfBatchReady(before)
        condition.unlock()
    }

    /// Wakes the exporter when the last append made a batch (or half the byte budget) wait. Under the lock.
    private func wakeIfBatchReady(_ before: (spans: Int, bytes: Int)) {
        let half = settings.maxQueueBytes / 2
        if (before.spans < settings.batchSize && pending.spanCount >= settings.batchSize) || (before.bytes < half && pending.byteCount >= half) {
            condition.signal()
        }
    }

    /// Encodes a span with `body` straight into the queue, under its lock (no copy); `body` gets a
    /// fresh span id. A span that does not fit is dropped and counted.
    func record(_ body: (inout SpanWriter, UInt64) -> Void) {
        condition.lock()
        let before = (spans: pending.spanCount, bytes: pending.byteCount)
        guard pending.spanCount < settings.maxQueueSize, !closed else {
            dropped += 1
            condition.unlock()
            return
        }
        let id = ids.nonZero()
        if pending.append({ body(&$0, id) }) {
            wakeIfBatchReady(before)
        } else {
            dropped += 1
        }
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

    /// What waits, blocking until `batchSize` spans (or half the byte budget) wait, the
    /// schedule delay passed with at least one waiting, a flush was asked, or the queue was
    /// closed. With at least `batchSize` spans and no flush or close, only whole multiples of
    /// `batchSize` are taken and the rest stays queued. `dropped` counts the spans the full queue
    /// refused since the last call. Give the batch back with `recycle` once sent.
    public func next() -> (batch: SpanBatch, dropped: Int, closed: Bool) {
        condition.lock()
        defer { condition.unlock() }
        var deadline = Date(timeIntervalSinceNow: settings.scheduleDelay)
        let half = settings.maxQueueBytes / 2
        while pending.spanCount < settings.batchSize && pending.byteCount < half && !closed && !flushRequested {
            if !condition.wait(until: deadline) {
                if pending.spanCount > 0 { break }
                deadline = Date(timeIntervalSinceNow: settings.scheduleDelay)
            }
        }
        let partial = closed || flushRequested
        flushRequested = false
        let batch = pending
        pending = spare ?? SpanBatch(capacity: settings.maxQueueBytes, batchSpans: settings.batchSize)
        spare = nil
        // Whole batches only, unless asked to send all: the spans past the last full batch stay
        // queued, first in line (else the exporter, woken at `batchSize` and reaching the lock some
        // spans later, posted every batch as a full post and a small one).
        let full = batch.spanCount / settings.batchSize * settings.batchSize
        if !partial && full > 0 && full < batch.spanCount { batch.moveSpans(after: full, to: pending) }
        let lost = dropped
        dropped = 0
        return (batch, lost, closed)
    }

    /// Takes a sent batch's memory back for the next one.
    public func recycle(_ batch: SpanBatch) {
        batch.reset()
        condition.lock()
        spare = batch
        condition.unlock()
    }

    /// Spans waiting now.
    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.spanCount
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
    /// The part of a request body before its spans, reused from post to post.
    private var prefix: [UInt8] = []

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
        KernelThreadName.set("otlp-export")
        while true {
            let (batch, lost, closed) = queue.next()
            if lost > 0 {
                metrics.countDroppedSpans(lost, reason: .queueFull)
                warn("spans dropped: the export queue was full", ["dropped_count": "\(lost)", "queue_size": "\(queue.settings.maxQueueSize)"])
            }
            for chunk in batch.chunks(of: queue.settings.batchSize) { export(batch, chunk.bytes, spans: chunk.spans) }
            queue.recycle(batch)
            if closed { break }
        }
        client.close()
        done.signal()
    }

    /// Posts the `spans` spans in `range` of `batch` as one request.
    private func export(_ batch: SpanBatch, _ range: Range<Int>, spans count: Int) {
        let spans = UnsafeRawBufferPointer(rebasing: batch.bytes[range])
        encoder.prefix(spanBytes: spans.count, into: &prefix)
        do {
            try prefix.withUnsafeBytes { try client.post([$0, spans]) }
        } catch {
            metrics.countDroppedSpans(count, reason: .exportFailed)
            warn("spans dropped: export failed", ["batch_size": "\(count)", "error": "\(error)"])
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
