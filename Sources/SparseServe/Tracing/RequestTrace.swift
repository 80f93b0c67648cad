import Dispatch
import Foundation
import HTTPServer
import Logging
import Synchronization
import Tracing

/// One traced request: its server span, and child spans recorded with explicit start and end
/// times (uptime nanoseconds, as the pipeline measures them). `bind` makes it the calling
/// thread's current trace (a thread-local slot: what `TracedStep`, the pipeline and log lines
/// find); the router binds it while it handles the request, the pipeline on compute threads.
///
/// With `SpanExportTracer` the server span is no span object either: the trace keeps its ids,
/// start and encoded attributes, and `finish` records it in one step like the children. With
/// any other tracer it is a span from `startSpan`, and `bind` also binds its `ServiceContext`.
final class RequestTrace: Sendable {
    /// The tracer, server span and the trace id it injects, with a tracer other than
    /// `SpanExportTracer` (one reference: the request path's copies of the trace then move no existential).
    private let other: OtherTracerSpan?
    /// The server span, with a tracer other than `SpanExportTracer`.
    var root: (any Span)? { other?.root }
    /// The tracer when it is `SpanExportTracer`.
    private let exporter: SpanExportTracer?
    /// With `exporter`: the server span's ids and sampled flag, its parent's id and start (ns since the epoch).
    let position: ExportSpanContext
    private let parentSpanID: UInt64, startNanoseconds: UInt64
    /// What the server span is named for and its attributes (`http.request.method`, `url.path`,
    /// `http.route`, `sparseserve.model`): with `exporter` encoded when it ends, in one step.
    private let request: ServerRequest
    /// Wall clock minus uptime at the start, to turn uptime instants into span times.
    private let epochOffset: Int64
    /// With `exporter`: the request's spans, encoded as they end and queued in one step with the
    /// server span (one lock of the shared queue per request, not one per span).
    private let spans: Mutex<RequestSpans>

    /// `exporter`: `tracer` when it is a `SpanExportTracer` (the caller knows without a cast);
    /// `caller`: the position a valid `traceparent` gave, for it.
    init(tracer: any Tracer, exporter: SpanExportTracer?, request: ServerRequest, parent: ServiceContext, caller: ExportSpanContext?,
         startedAt uptime: UInt64) {
        self.exporter = exporter
        self.request = request
        let now = DispatchTime.now().uptimeNanoseconds
        epochOffset = Int64(DefaultTracerClock.now.nanosecondsSinceEpoch) - Int64(now)
        startNanoseconds = UInt64(max(0, Int64(uptime) + epochOffset))
        if let exporter {
            other = nil
            let (own, seed) = exporter.serverContext(of: caller)
            position = own
            spans = Mutex(RequestSpans(seed: seed))
            parentSpanID = caller?.spanID ?? 0
            return
        }
        spans = Mutex(RequestSpans(seed: 0))
        let span = tracer.startSpan(request.operation, context: parent, ofKind: .server,
                                    at: DefaultTracerClock.Instant(nanosecondsSinceEpoch: startNanoseconds))
        var values = SpanAttributeSink(writer: nil)
        request.attributes(&values)
        span.attributes = values.attributes
        (position, parentSpanID) = (ExportSpanContext(traceHigh: 0, traceLow: 0, spanID: 0, sampled: false, traceState: nil), 0)
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: HeaderDictionaryInjector())
        other = OtherTracerSpan(tracer: tracer, root: span, injectedTraceID: carrier["traceparent"].flatMap(TraceContextHeaders.traceID(ofTraceparent:)))
    }

    deinit { spans.withLock { $0.release() } }

    /// The 32-hex-digit trace id, nil when the tracer writes none.
    var traceID: String? { exporter != nil ? position.traceIDHex : other?.injectedTraceID }

    /// The trace of the request being handled on this thread, if it is traced.
    static var current: RequestTrace? { CurrentTrace.get() }

    func instant(_ uptime: UInt64) -> DefaultTracerClock.Instant {
        DefaultTracerClock.Instant(nanosecondsSinceEpoch: UInt64(max(0, Int64(uptime) + epochOffset)))
    }

    /// A finished child span of the request from `start` to `end` (uptime ns).
    func record(_ name: String, from start: UInt64, to end: UInt64, error: (any Error)? = nil,
                _ attributes: (inout SpanAttributeSink) -> Void = { _ in }) {
        if let exporter {
            guard position.sampled else { return }
            let (from, to) = (instant(start).nanosecondsSinceEpoch, instant(max(start, end)).nanosecondsSinceEpoch)
            let kept = spans.withLock { spans in
                let id = spans.nextID()
                return spans.append { SpanExportTracer.write(&$0, name, id: id, parent: position, start: from, end: to, error: error, attributes) }
            }
            // After the server span (or when a span is too large for the buffer) it goes straight to the queue.
            if !kept { exporter.record(name, parent: position, start: from, end: to, error: error, attributes) }
            return
        }
        guard let other else { return }
        let span = other.tracer.startSpan(name, context: other.root.context, ofKind: .internal, at: instant(start))
        var values = SpanAttributeSink(writer: nil)
        attributes(&values)
        if !values.attributes.isEmpty { span.attributes = values.attributes }
        if let error {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
        }
        span.end(at: instant(max(start, end)))
    }

    /// The server span (with `SpanExportTracer`), encoded in place in the queue by `finish`.
    private func writeServerSpan(_ w: inout SpanWriter, status: Int, requestID: String?, end: UInt64) {
        w.message(2) { s in
            s.head(position, parentSpanID: parentSpanID, name: request.method, nameSuffix: request.route, kind: .server,
                   start: startNanoseconds, end: end)
            var sink = SpanAttributeSink(writer: s)
            request.attributes(&sink)
            sink.set("http.response.status_code", status)
            if let requestID { sink.set("sparseserve.request_id", requestID) }
            s = sink.writer!
            if status >= 500 { s.status(SpanStatus(code: .error)) }
        }
    }

    /// The `batch forward` span of a forward pass this request ran in.
    func forward(_ pass: BatchForward, error: (any Error)? = nil) {
        record("batch forward", from: pass.started, to: pass.finished, error: error) { a in
            a.set("sparseserve.batch.requests", pass.requests)
            a.set("sparseserve.batch.rows", pass.rows)
            a.set("sparseserve.batch.tokens", pass.tokens)
        }
    }

    /// Runs `body` with `trace` bound (log lines get its trace id); without a trace, just runs it.
    static func bind(_ trace: RequestTrace?, _ body: () -> Void) {
        guard let trace else { return body() }
        guard let other = trace.other else { return CurrentTrace.with(trace, body) }
        CurrentTrace.with(trace) { ServiceContext.withValue(other.root.context, operation: body) }
    }

    /// Ends the server span with the response's status (an error for 5xx, as OpenTelemetry's HTTP
    /// conventions have it).
    func finish(status: Int, requestID: String?) {
        if let exporter {
            guard position.sampled else { return }
            let end = DefaultTracerClock.now.nanosecondsSinceEpoch
            spans.withLock { spans in
                spans.flush(into: exporter.queue) { w in writeServerSpan(&w, status: status, requestID: requestID, end: end) }
            }
            return
        }
        let failed = status >= 500 ? SpanStatus(code: .error) : nil
        root?.updateAttributes { a in
            a["http.response.status_code"] = SpanAttribute.int64(Int64(status))
            if let requestID { a["sparseserve.request_id"] = SpanAttribute.string(requestID) }
        }
        if let failed { root?.setStatus(failed) }
        root?.end()
    }
}

/// A request's tracer and server span when the tracer is not `SpanExportTracer`, and the trace id it injects.
final class OtherTracerSpan: Sendable {
    let tracer: any Tracer
    let root: any Span
    let injectedTraceID: String?

    init(tracer: any Tracer, root: any Span, injectedTraceID: String?) {
        (self.tracer, self.root, self.injectedTraceID) = (tracer, root, injectedTraceID)
    }
}

/// The child spans of one request (`RequestTrace` with `SpanExportTracer`), encoded back to back in
/// memory of its own until the server span ends and `flush` queues them with it at once (the
/// server span is encoded in place in the queue: a request's children, ~600–800 bytes, then fit
/// the first 1000 bytes). 1000, not 1024: glibc rounds 1024 up to a 1040-byte chunk, a large-bin
/// request, and the thread that allocates it (a dispatch thread, whose per-thread cache never
/// gets it back: the compute thread frees it) ran `malloc_consolidate` for most of them; a
/// 1008-byte chunk is a small-bin one, which never consolidates. Plain `malloc`: `allocate`
/// went through `posix_memalign` (~300 instructions a request by callgrind). Child span
/// ids come from a per-request seed through SplitMix64's mixer (a bijection, so the ids of one
/// trace differ), without the shared generator's lock.
struct RequestSpans: @unchecked Sendable {  // (its memory is reached only under the trace's lock)
    private var memory: UnsafeMutablePointer<UInt8>?
    private var capacity = 0, count = 0, spans = 0, drawn: UInt64 = 0
    private let seed: UInt64
    /// After `flush`, spans are not kept here any more (`append` answers false).
    private(set) var flushed = false
    /// Bytes one request keeps at most before its spans go to the queue one by one.
    static let initialBytes = 1000, maxBytes = 64 << 10

    init(seed: UInt64) { self.seed = seed }

    /// The next child span id.
    mutating func nextID() -> UInt64 {
        drawn += 1
        var z = seed &+ drawn &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z == 0 ? 1 : z
    }

    /// Encodes one span with `body` after the others (growing the memory up to `maxBytes`);
    /// false once flushed or when it does not fit.
    mutating func append(_ body: (inout SpanWriter) -> Void) -> Bool {
        guard !flushed else { return false }
        while true {
            if let memory, capacity > count {
                var w = SpanWriter(UnsafeMutableBufferPointer(start: memory + count, count: capacity - count))
                body(&w)
                if !w.overflowed {
                    guard w.count > 0 else { return false }
                    count += w.count
                    spans += 1
                    return true
                }
            }
            guard capacity < Self.maxBytes else { return false }
            let size = capacity == 0 ? Self.initialBytes : min(capacity * 4, Self.maxBytes)
            guard let grown = malloc(size)?.assumingMemoryBound(to: UInt8.self) else { return false }
            if let memory {
                grown.update(from: memory, count: count)
                free(memory)
            }
            (memory, capacity) = (grown, size)
        }
    }

    /// Queues what was kept and then the span `last` encodes (the server span), and frees the
    /// memory; later spans go to the queue one by one.
    mutating func flush(into queue: SpanExportQueue, last: (inout SpanWriter) -> Void) {
        flushed = true
        queue.push(UnsafeRawBufferPointer(start: memory, count: count), spans: spans, last: last)
        free(memory)
        memory = nil
        (capacity, count, spans) = (0, 0, 0)
    }

    /// Memory of a trace that ended without a server span (nothing is queued then).
    func release() { free(memory) }
}

/// What a server span is named for and carries from the request: `METHOD /route/{template}`
/// (the method alone without a route), `http.request.method`, `url.path` (up to 256 bytes),
/// `http.route` and `sparseserve.model`.
struct ServerRequest: Sendable {
    let method: String, path: String, route: String?, model: String?

    var operation: String { route.map { "\(method) \($0)" } ?? method }

    func attributes(_ a: inout SpanAttributeSink) {
        a.set("http.request.method", method)
        a.set("url.path", path.utf8.count <= 256 ? path : String(path.utf8.prefix(256)) ?? String(path.prefix(64)))
        if let route { a.set("http.route", route) }
        if let model { a.set("sparseserve.model", model) }
    }
}

/// The tracer of a service with tracing on: starts a trace per request from its W3C headers.
public final class RequestTracing: Sendable {
    public let tracer: any Tracer
    /// `tracer` when it is our exporter's: requests then record their spans directly.
    let exporter: SpanExportTracer?
    /// Whether responses carry the trace id for the server's debug request line.
    let tagsRequestLog: Bool

    public init(tracer: any Tracer, tagsRequestLog: Bool = true) {
        self.tracer = tracer
        exporter = tracer as? SpanExportTracer
        self.tagsRequestLog = tagsRequestLog
    }

    /// Adds the trace id of the request being handled to every log line (`trace_id`).
    public static let logMetadataProvider = Logger.MetadataProvider {
        guard let id = RequestTrace.current?.traceID else { return [:] }
        return ["trace_id": "\(id)"]
    }

    /// The trace of `request` on `route` (nil: no route matched), continuing the client's trace
    /// when its `traceparent` is valid.
    func begin(_ request: HTTPRequest, route: Route?, at uptime: UInt64 = DispatchTime.now().uptimeNanoseconds) -> RequestTrace {
        // (`tracestate` counts only with a `traceparent`: not looked up without one)
        let traceparent = request.headers["traceparent"]
        let headers = TraceContextHeaders(traceparent: traceparent, tracestate: traceparent == nil ? nil : request.headers["tracestate"])
        var parent = ServiceContext.topLevel
        var caller: ExportSpanContext?
        if let traceparent = headers.traceparent {
            if exporter != nil {
                caller = ExportSpanContext(traceparent: traceparent, tracestate: headers.tracestate)
            } else {
                tracer.extract(headers, into: &parent, using: TraceContextExtractor())
            }
        }
        let server = ServerRequest(method: request.method, path: request.path, route: route.flatMap(Self.template),
                                   model: route.flatMap(Self.model))
        return RequestTrace(tracer: tracer, exporter: exporter, request: server, parent: parent, caller: caller, startedAt: uptime)
    }

    /// Handles a request inside its trace: `body` runs with the trace bound, and its responder
    /// ends the server span before the response goes out. The server span starts when the head
    /// was complete (`headReceivedAt`), so the head gate and reading the body are inside it (a
    /// request with a body gets a `read body` child over that time). Nothing of the trace is built
    /// before the gate let the head through and the body was read: only that instant was taken.
    func trace(_ request: HTTPRequest, route: Route?, respond: @escaping Responder, _ body: (@escaping Responder) -> Void) {
        let now = DispatchTime.now().uptimeNanoseconds
        let head = request.headReceivedAt > 0 ? min(request.headReceivedAt, now) : now
        let trace = begin(request, route: route, at: head)
        if head < now && !request.body.isEmpty {
            let size = request.body.count  // (the closure captures the size, not a copy of the request)
            trace.record("read body", from: head, to: now) { $0.set("http.request.body.size", size) }
        }
        RequestTrace.bind(trace) {
            body { response in
                trace.finish(status: response.status, requestID: Self.requestID(response.headers))
                var response = response
                if self.tagsRequestLog, let id = trace.traceID { response.logMetadata["trace_id"] = id }
                respond(response)
            }
        }
    }

    /// A server span for a request the head gate refused (it never reaches the router), with an
    /// `authentication` child when it was refused for its key.
    func refused(_ head: HTTPRequest, route: Route?, status: Int, requestID: String?) {
        let now = DispatchTime.now().uptimeNanoseconds
        let start = head.headReceivedAt > 0 ? min(head.headReceivedAt, now) : now
        let trace = begin(head, route: route, at: start)
        if status == 401 {
            trace.record("authentication", from: start, to: now) { $0.set("sparseserve.auth.result", "refused") }
        }
        trace.finish(status: status, requestID: requestID)
    }

    /// The `X-Request-ID` of a response, compared byte by byte (a cheaper look-up than the
    /// headers' subscript on the request path).
    static func requestID(_ headers: HTTPHeaders) -> String? {
        for (name, value) in headers where name.utf8.count == requestIDName.count {
            let match = SpanWriter.withBytes(name) { b in
                (0..<b.count).allSatisfy { i in (b[i] >= 0x41 && b[i] <= 0x5A ? b[i] | 0x20 : b[i]) == requestIDName[i] }
            }
            if match { return value }
        }
        return nil
    }

    private static let requestIDName = Array("x-request-id".utf8)

    /// The `http.route` of a route: its path with the names it takes as `{placeholders}`.
    static func template(_ route: Route) -> String? {
        switch route {
        case .infer(_, let version): return version == nil ? "/v2/models/{model}/infer" : "/v2/models/{model}/versions/{version}/infer"
        case .modelMetadata: return "/v2/models/{model}"
        case .modelReady: return "/v2/models/{model}/ready"
        case .modelConfig: return "/v2/models/{model}/config"
        case .modelStatistics(let model, _): return model == nil ? "/v2/models/stats" : "/v2/models/{model}/stats"
        case .embeddings: return "/v1/embeddings"
        case .models: return "/v1/models"
        case .model: return "/v1/models/{id}"
        case .tei(let operation, _): return "/" + operation.rawValue
        case .metrics: return "/metrics"
        case .live: return "/v2/health/live"
        case .ready: return "/v2/health/ready"
        case .serverMetadata: return "/v2"
        default: return nil
        }
    }

    /// The model a route names in its path.
    static func model(_ route: Route) -> String? {
        switch route {
        case .infer(let model, _), .modelMetadata(let model, _), .modelReady(let model, _), .modelConfig(let model, _),
             .tei(_, let model):
            return model
        default: return nil
        }
    }
}

/// The calling thread's current `RequestTrace`: a pthread key holding an unretained reference,
/// set only around synchronous work that holds the trace.
enum CurrentTrace {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static func get() -> RequestTrace? {
        pthread_getspecific(key).map { Unmanaged<RequestTrace>.fromOpaque($0).takeUnretainedValue() }
    }

    static func with(_ trace: RequestTrace, _ body: () -> Void) {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(trace).toOpaque())
        defer { pthread_setspecific(key, previous) }
        body()
    }
}
