import Synchronization
import Tracing

/// A span as it is exported: ids, name, kind, times (ns since the epoch), attributes, status and
/// events. What `SpanExportQueue` holds and `OTLPTraceEncoder` writes.
public struct FinishedSpan: Sendable {
    public var context: ExportSpanContext
    /// 0 for a root span.
    public var parentSpanID: UInt64
    public var name: String
    public var kind: SpanKind
    public var start: UInt64
    public var end: UInt64
    public var attributes = SpanAttributes()
    public var status: SpanStatus?
    public var events: [SpanEvent] = []

    public init(context: ExportSpanContext, parentSpanID: UInt64, name: String, kind: SpanKind, start: UInt64, end: UInt64) {
        (self.context, self.parentSpanID, self.name, self.kind, self.start, self.end) = (context, parentSpanID, name, kind, start, end)
    }

    /// OpenTelemetry's `exception` event for `error`.
    static func exception(_ error: any Error, at nanoseconds: UInt64, attributes: SpanAttributes = [:]) -> SpanEvent {
        var all = attributes
        all["exception.type"] = String(reflecting: type(of: error))
        all["exception.message"] = String(describing: error)
        return SpanEvent(name: "exception", at: SpanExportInstant(nanosecondsSinceEpoch: nanoseconds), attributes: all)
    }
}

/// A `TracerInstant` from nanoseconds since the epoch.
struct SpanExportInstant: TracerInstant {
    var nanosecondsSinceEpoch: UInt64
    static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
}

/// The span `SpanExportTracer.startSpan` returns. Its mutable state sits behind a lock held for a
/// field write; `end` hands the finished span to the export queue (nil queue: not sampled, and
/// nothing is kept).
public final class ExportingSpan: Tracing.Span, Sendable {
    public let context: ServiceContext
    private let state: Mutex<FinishedSpan>
    private let queue: SpanExportQueue?
    private let ended = Atomic<Bool>(false)

    init(name: String, kind: SpanKind, context: ServiceContext, position: ExportSpanContext, parentSpanID: UInt64, start: UInt64,
         queue: SpanExportQueue?) {
        self.context = context
        self.queue = queue
        state = Mutex(FinishedSpan(context: position, parentSpanID: parentSpanID, name: name, kind: kind, start: start, end: start))
    }

    public var isRecording: Bool { queue != nil && !ended.load(ordering: .relaxed) }

    public var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }

    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set {
            guard queue != nil else { return }
            state.withLock { $0.attributes = newValue }
        }
    }

    public func setStatus(_ status: SpanStatus) {
        guard queue != nil else { return }
        state.withLock { $0.status = status }
    }

    public func addEvent(_ event: SpanEvent) {
        guard queue != nil else { return }
        state.withLock { $0.events.append(event) }
    }

    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        guard queue != nil else { return }
        let event = FinishedSpan.exception(error, at: instant().nanosecondsSinceEpoch, attributes: attributes)
        state.withLock { $0.events.append(event) }
    }

    /// Links are not exported (the request path makes none).
    public func addLink(_ link: SpanLink) {}

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        guard let queue, !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let at = instant().nanosecondsSinceEpoch
        let finished: FinishedSpan = state.withLock { span in
            span.end = max(span.start, at)
            return span
        }
        queue.push(finished)
    }
}
