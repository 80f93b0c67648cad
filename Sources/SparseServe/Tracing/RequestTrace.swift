import Dispatch
import Foundation
import HTTPServer
import Logging
import Tracing

/// One traced request: its server span, and child spans recorded with explicit start and end
/// times (uptime nanoseconds, as the pipeline measures them). It travels in `ServiceContext`
/// under `RequestTrace.Key`, bound by the router while it handles the request and by the
/// pipeline on compute threads, so log lines written meanwhile carry its trace id.
final class RequestTrace: Sendable {
    enum Key: ServiceContextKey {
        typealias Value = RequestTrace
        static var nameOverride: String? { "sparseserve-request-trace" }
    }

    let tracer: any Tracer
    let root: any Span
    /// The 32-hex-digit trace id (from the outgoing `traceparent`), nil when the tracer writes none.
    let traceID: String?
    /// Wall clock minus uptime at the start, to turn uptime instants into span times.
    private let epochOffset: Int64
    /// The server span's context with this trace in it (what the router and pipeline bind).
    var context: ServiceContext {
        var context = root.context
        context[Key.self] = self
        return context
    }

    /// With `SpanExportTracer`: it and the server span's position, so child spans are recorded
    /// in one step (`SpanExportTracer.record`) instead of through span objects.
    private let direct: (tracer: SpanExportTracer, position: ExportSpanContext, root: ExportingSpan)?

    init(tracer: any Tracer, operation: String, parent: ServiceContext, startedAt uptime: UInt64) {
        self.tracer = tracer
        let now = DispatchTime.now().uptimeNanoseconds
        epochOffset = Int64(DefaultTracerClock.now.nanosecondsSinceEpoch) - Int64(now)
        let start = DefaultTracerClock.Instant(nanosecondsSinceEpoch: UInt64(Int64(uptime) + epochOffset))
        root = tracer.startSpan(operation, context: parent, ofKind: .server, at: start)
        if let exporter = tracer as? SpanExportTracer, let span = root as? ExportingSpan,
           let position = span.context[SpanExportTracer.ContextKey.self] {
            direct = (exporter, position, span)
            traceID = position.traceIDHex
            return
        }
        direct = nil
        var carrier: [String: String] = [:]
        tracer.inject(root.context, into: &carrier, using: HeaderDictionaryInjector())
        traceID = carrier["traceparent"].flatMap(TraceContextHeaders.traceID(ofTraceparent:))
    }

    /// The trace of the request being handled on this thread, if it is traced.
    static var current: RequestTrace? { ServiceContext.current?[Key.self] }

    func instant(_ uptime: UInt64) -> DefaultTracerClock.Instant {
        DefaultTracerClock.Instant(nanosecondsSinceEpoch: UInt64(max(0, Int64(uptime) + epochOffset)))
    }

    /// A finished child span of the request from `start` to `end` (uptime ns).
    func record(_ name: String, from start: UInt64, to end: UInt64, error: (any Error)? = nil,
                _ attributes: (inout ExportAttributes) -> Void = { _ in }) {
        var values = ExportAttributes()
        if let direct {
            guard direct.position.sampled else { return }
            attributes(&values)
            direct.tracer.record(name, parent: direct.position, start: instant(start).nanosecondsSinceEpoch,
                                 end: instant(max(start, end)).nanosecondsSinceEpoch, attributes: values, error: error)
            return
        }
        let span = tracer.startSpan(name, context: root.context, ofKind: .internal, at: instant(start))
        attributes(&values)
        if !values.isEmpty { span.attributes = values.spanAttributes }
        if let error {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
        }
        span.end(at: instant(max(start, end)))
    }

    /// The `batch forward` span of a forward pass this request ran in.
    func forward(_ pass: BatchForward, error: (any Error)? = nil) {
        record("batch forward", from: pass.started, to: pass.finished, error: error) { a in
            a["sparseserve.batch.requests"] = .int64(Int64(pass.requests))
            a["sparseserve.batch.rows"] = .int64(Int64(pass.rows))
            a["sparseserve.batch.tokens"] = .int64(Int64(pass.tokens))
        }
    }

    /// Runs `body` with `trace` bound (log lines get its trace id); without a trace, just runs it.
    static func bind(_ trace: RequestTrace?, _ body: () -> Void) {
        guard let trace else { return body() }
        ServiceContext.withValue(trace.context, operation: body)
    }

    /// Adds attributes to the server span (in place with `SpanExportTracer`).
    func annotate(_ body: (inout ExportAttributes) -> Void) {
        if let direct { return direct.root.update(body) }
        var values = ExportAttributes()
        body(&values)
        root.updateAttributes { a in
            for (name, value) in values.pairs { a[name] = value }
        }
    }

    /// Ends the server span with the response's status (an error for 5xx, as OpenTelemetry's HTTP
    /// conventions have it).
    func finish(status: Int, requestID: String?) {
        annotate { a in
            a["http.response.status_code"] = .int64(Int64(status))
            if let requestID { a["sparseserve.request_id"] = .string(requestID) }
        }
        if status >= 500 { root.setStatus(SpanStatus(code: .error)) }
        root.end()
    }
}

/// The tracer of a service with tracing on: starts a trace per request from its W3C headers.
public struct RequestTracing: Sendable {
    public let tracer: any Tracer

    public init(tracer: any Tracer) { self.tracer = tracer }

    /// Adds the trace id of the request being handled to every log line (`trace_id`).
    public static let logMetadataProvider = Logger.MetadataProvider {
        guard let id = RequestTrace.current?.traceID else { return [:] }
        return ["trace_id": "\(id)"]
    }

    /// The trace of `request` on `route` (nil: no route matched), continuing the client's trace
    /// when its `traceparent` is valid.
    func begin(_ request: HTTPRequest, route: Route?, at uptime: UInt64 = DispatchTime.now().uptimeNanoseconds) -> RequestTrace {
        let headers = TraceContextHeaders(traceparent: request.headers["traceparent"], tracestate: request.headers["tracestate"])
        var parent = ServiceContext.topLevel
        if headers.traceparent != nil {
            tracer.extract(headers, into: &parent, using: TraceContextExtractor())
        }
        let template = route.flatMap(Self.template)
        let trace = RequestTrace(tracer: tracer, operation: template.map { "\(request.method) \($0)" } ?? request.method,
                                 parent: parent, startedAt: uptime)
        trace.annotate { a in
            a["http.request.method"] = .string(request.method)
            a["url.path"] = .string(String(request.path.prefix(256)))
            if let template { a["http.route"] = .string(template) }
            if let model = route.flatMap(Self.model) { a["sparseserve.model"] = .string(model) }
        }
        return trace
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
            trace.record("read body", from: head, to: now) { $0["http.request.body.size"] = .int64(Int64(request.body.count)) }
        }
        ServiceContext.withValue(trace.context) {
            body { response in
                trace.finish(status: response.status, requestID: response.headers["x-request-id"])
                var response = response
                if let id = trace.traceID { response.logMetadata["trace_id"] = id }
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
            trace.record("authentication", from: start, to: now) { $0["sparseserve.auth.result"] = "refused" }
        }
        trace.finish(status: status, requestID: requestID)
    }

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
