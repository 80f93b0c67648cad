import Synchronization
import Tracing

/// What an `ExportingSpan` holds until it ends: ids, name, kind, times (ns since the epoch),
/// attributes, status and events; then `SpanWriter.span` encodes it for the export queue.
public struct FinishedSpan: Sendable {
    public var context: ExportSpanContext
    /// 0 for a root span.
    public var parentSpanID: UInt64
    public var name: String
    public var kind: SpanKind
    public var start: UInt64
    public var end: UInt64
    public var attributes = ExportAttributes()
    /// Attributes set through `ExportingSpan.update`, already encoded (span field 9 entries).
    var encodedAttributes: [UInt8] = []
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

extension SpanWriter {
    /// `span` as a `ScopeSpans.spans` entry.
    mutating func span(_ span: FinishedSpan) {
        message(2) { s in
            s.head(span.context, parentSpanID: span.parentSpanID, name: span.name, kind: span.kind, start: span.start, end: span.end)
            span.encodedAttributes.withUnsafeBytes { s.raw($0) }
            for (key, value) in span.attributes.pairs { s.attribute(key, value) }
            for event in span.events { s.event(name: event.name, at: event.nanosecondsSinceEpoch, event.attributes) }
            if let status = span.status { s.status(status) }
        }
    }

    /// The string, integer, boolean and double attributes in encoded span field 9 entries
    /// (what `SpanAttributeSink` writes), in order.
    static func decodeAttributes(_ bytes: [UInt8]) -> [(String, SpanAttribute)] {
        var reader = WireReader(bytes: bytes[...]), out: [(String, SpanAttribute)] = []
        while let (field, entry) = reader.nextBytes() {
            guard field == 9 else { continue }
            var kv = WireReader(bytes: entry), key = "", value: SpanAttribute?
            while let (f, v) = kv.nextBytes() {
                if f == 1 { key = String(decoding: v, as: UTF8.self) }
                if f == 2 { value = WireReader.anyValue(v) }
            }
            if let value { out.append((key, value)) }
        }
        return out
    }
}

/// Reads the fields of an encoded message (what `decodeAttributes` needs: length-delimited
/// fields, with varint and fixed64 ones inside `AnyValue`).
struct WireReader {
    var bytes: ArraySlice<UInt8>

    mutating func varint() -> UInt64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while let c = bytes.popFirst(), shift < 64 {
            v |= UInt64(c & 0x7F) << shift
            if c < 0x80 { return v }
            shift += 7
        }
        return nil
    }

    /// The next field: its number and, for a length-delimited one, its bytes (else empty).
    mutating func next() -> (field: UInt64, wire: UInt64, value: UInt64, bytes: ArraySlice<UInt8>)? {
        guard let key = varint() else { return nil }
        switch key & 7 {
        case 0: return varint().map { (key >> 3, 0, $0, []) }
        case 1:
            guard bytes.count >= 8 else { return nil }
            let v = bytes.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            bytes = bytes.dropFirst(8)
            return (key >> 3, 1, v, [])
        case 2:
            guard let n = varint(), n <= bytes.count else { return nil }
            defer { bytes = bytes.dropFirst(Int(n)) }
            return (key >> 3, 2, 0, bytes.prefix(Int(n)))
        default: return nil
        }
    }

    mutating func nextBytes() -> (UInt64, ArraySlice<UInt8>)? {
        while let f = next() { if f.wire == 2 { return (f.field, f.bytes) } }
        return nil
    }

    static func anyValue(_ bytes: ArraySlice<UInt8>) -> SpanAttribute? {
        var r = WireReader(bytes: bytes)
        guard let f = r.next() else { return nil }
        switch f.field {
        case 1: return .string(String(decoding: f.bytes, as: UTF8.self))
        case 2: return .bool(f.value != 0)
        case 3: return .int64(Int64(bitPattern: f.value))
        case 4: return .double(Double(bitPattern: f.value))
        default: return nil
        }
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
    /// Its ids and sampled flag (what `context` carries under `SpanExportTracer.ContextKey`).
    public let position: ExportSpanContext
    private let state: Mutex<FinishedSpan>
    private let queue: SpanExportQueue?
    private let ended = Atomic<Bool>(false)

    init(name: String, kind: SpanKind, context: ServiceContext, position: ExportSpanContext, parentSpanID: UInt64, start: UInt64,
         queue: SpanExportQueue?) {
        self.context = context
        self.position = position
        self.queue = queue
        state = Mutex(FinishedSpan(context: position, parentSpanID: parentSpanID, name: name, kind: kind, start: start, end: start))
    }

    public var isRecording: Bool { queue != nil && !ended.load(ordering: .relaxed) }

    public var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }

    public var attributes: SpanAttributes {
        get {
            state.withLock { span in
                var all = span.attributes.spanAttributes
                for (key, value) in SpanWriter.decodeAttributes(span.encodedAttributes) { all[key] = value }
                return all
            }
        }
        set {
            guard queue != nil else { return }
            let pairs = ExportAttributes(newValue)
            state.withLock { $0.attributes = pairs }
        }
    }

    /// Sets attributes without going through `SpanAttributes`: they are encoded at once (nothing
    /// when not recording). Each key is set once.
    public func update(_ body: (inout SpanAttributeSink) -> Void) {
        guard queue != nil else { return }
        withSpanWriter({ w in
            var sink = SpanAttributeSink(writer: w)
            body(&sink)
            w = sink.writer!
        }) { bytes in
            state.withLock { span in
                if span.encodedAttributes.isEmpty { span.encodedAttributes.reserveCapacity(256) }
                span.encodedAttributes.append(contentsOf: bytes)
            }
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
        state.withLock { span in
            span.end = max(span.start, at)
            queue.record { w, _ in w.span(span) }
        }
    }
}
