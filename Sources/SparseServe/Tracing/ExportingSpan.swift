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
    public var attributes = ExportAttributes()
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

/// A span's attributes in the order they were set: a small array of pairs, no hashing. What the
/// request path's spans carry (a few attributes each), cheaper to fill, copy and encode than
/// `SpanAttributes`, a dictionary.
public struct ExportAttributes: Sendable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(name: String, value: SpanAttribute)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, SpanAttribute)...) {
        for (name, value) in elements { self[name] = value }
    }

    /// The pairs of `attributes` (in its dictionary's order).
    public init(_ attributes: SpanAttributes) {
        attributes.forEach { name, value in pairs.append((name, value)) }
    }

    public var isEmpty: Bool { pairs.isEmpty }

    /// The value set for `name`; setting one again replaces it, nil removes it.
    public subscript(name: String) -> SpanAttribute? {
        get { pairs.first { $0.name == name }?.value }
        set {
            let index = pairs.firstIndex { $0.name == name }
            switch (index, newValue) {
            case (let i?, let v?): pairs[i].value = v
            case (let i?, nil): pairs.remove(at: i)
            case (nil, let v?):
                if pairs.capacity == 0 { pairs.reserveCapacity(8) }  // one allocation for a request span's few
                pairs.append((name, v))
            case (nil, nil): break
            }
        }
    }

    public func get(_ name: String) -> SpanAttribute? { self[name] }

    /// As `SpanAttributes`, for the `Span` protocol and other tracers.
    public var spanAttributes: SpanAttributes {
        var out = SpanAttributes()
        for (name, value) in pairs { out[name] = value }
        return out
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
        get { state.withLock { $0.attributes.spanAttributes } }
        set {
            guard queue != nil else { return }
            let pairs = ExportAttributes(newValue)
            state.withLock { $0.attributes = pairs }
        }
    }

    /// Sets attributes without going through `SpanAttributes` (nothing when not recording).
    public func update(_ body: (inout ExportAttributes) -> Void) {
        guard queue != nil else { return }
        state.withLock { body(&$0.attributes) }
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
