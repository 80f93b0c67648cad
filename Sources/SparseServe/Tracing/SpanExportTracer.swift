import Foundation
import Instrumentation
import Synchronization
import Tracing

/// The trace position of a span: W3C trace id (two 64-bit halves), span id, sampled flag and the
/// caller's `tracestate`. Stored in `ServiceContext` under `SpanExportTracer.ContextKey`.
public struct ExportSpanContext: Sendable, Hashable {
    public var traceHigh: UInt64
    public var traceLow: UInt64
    public var spanID: UInt64
    public var sampled: Bool
    public var traceState: String?

    /// The 32 lower-case hex digits of the trace id.
    public var traceIDHex: String { Hex.string(traceHigh, traceLow) }

    /// `00-<trace id>-<span id>-<flags>`.
    public var traceparent: String {
        "00-" + Hex.string(traceHigh, traceLow) + "-" + Hex.string(spanID) + (sampled ? "-01" : "-00")
    }

    /// Reads a `traceparent` the way W3C Trace Context has it (nil when malformed).
    public init?(traceparent: String, tracestate: String?) {
        guard TraceContextHeaders.isValid(traceparent: traceparent) else { return nil }
        let bytes = Array(traceparent.utf8)
        guard let high = Hex.value(bytes[3..<19]), let low = Hex.value(bytes[19..<35]), let span = Hex.value(bytes[36..<52]),
              let flags = Hex.value(bytes[53..<55]) else { return nil }
        self.init(traceHigh: high, traceLow: low, spanID: span, sampled: flags & 1 == 1, traceState: tracestate)
    }

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool, traceState: String?) {
        (self.traceHigh, self.traceLow, self.spanID, self.sampled, self.traceState) = (traceHigh, traceLow, spanID, sampled, traceState)
    }
}

/// A `Tracer` (swift-distributed-tracing) built for the request path: a span costs an id from a
/// seeded xoshiro generator, one object, and an append to `SpanExportQueue` when it ends; nothing
/// waits on export and no task or thread hop happens per span (the queue's exporter thread posts
/// batches). `sampler` decides which traces are recorded (OpenTelemetry's built-in samplers);
/// unsampled spans are not recorded.
public final class SpanExportTracer: Tracer, Sendable {
    public typealias Span = ExportingSpan

    public enum ContextKey: ServiceContextKey {
        public typealias Value = ExportSpanContext
        public static var nameOverride: String? { "sparseserve-span-context" }
    }

    public let queue: SpanExportQueue
    public let sampler: TraceSampler

    public init(queue: SpanExportQueue, sampler: TraceSampler) {
        self.queue = queue
        self.sampler = sampler
    }

    /// With `parentbased_traceidratio` at `sampleRatio` (clamped to 0...1).
    public convenience init(queue: SpanExportQueue, sampleRatio: Double) {
        self.init(queue: queue, sampler: TraceSampler(name: "parentbased_traceidratio", ratio: min(max(sampleRatio, 0), 1))!)
    }

    /// The context of a new span under `parent` (a caller's or a local span's), or of a new trace.
    func childContext(of parent: ExportSpanContext?) -> ExportSpanContext { serverContext(of: parent).context }

    /// `childContext(of:)` and a seed for the span ids of the request's children
    /// (`RequestSpans.spanID`), drawn from the calling thread's generator (no shared lock: the
    /// queue's lock is then taken once per request, when its spans are queued).
    func serverContext(of parent: ExportSpanContext?) -> (context: ExportSpanContext, seed: UInt64) {
        let (high, low, span, seed) = ThreadIDs.draw { g in (g.next(), g.next(), g.nonZero(), g.next()) }
        if let parent {
            return (ExportSpanContext(traceHigh: parent.traceHigh, traceLow: parent.traceLow, spanID: span,
                                      sampled: sampler.samples(traceLow: parent.traceLow, parentSampled: parent.sampled),
                                      traceState: parent.traceState), seed)
        }
        let trace: (UInt64, UInt64) = high | low == 0 ? (1, low) : (high, low)
        return (ExportSpanContext(traceHigh: trace.0, traceLow: trace.1, spanID: span,
                                  sampled: sampler.samples(traceLow: trace.1, parentSampled: nil), traceState: nil), seed)
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> ExportingSpan {
        var context = context()
        let parent = context[ContextKey.self]
        let own = childContext(of: parent)
        context[ContextKey.self] = own
        return ExportingSpan(name: operationName, kind: kind, context: context, position: own, parentSpanID: parent?.spanID ?? 0,
                             start: instant().nanosecondsSinceEpoch, queue: own.sampled ? queue : nil)
    }

    /// A finished child span of `parent` recorded in one step, without a span object or a
    /// `ServiceContext`: encoded straight into the export queue. What the request path's fixed
    /// spans use. Nothing when `parent` is unsampled.
    public func record(_ name: String, parent: ExportSpanContext, kind: SpanKind = .internal, start: UInt64, end: UInt64,
                       error: (any Error)? = nil, _ attributes: (inout SpanAttributeSink) -> Void = { _ in }) {
        guard parent.sampled else { return }
        queue.record { w, id in
            Self.write(&w, name, id: id, parent: parent, kind: kind, start: start, end: end, error: error, attributes)
        }
    }

    /// A finished child span of `parent` with span id `id`, as a `ScopeSpans.spans` entry.
    static func write(_ w: inout SpanWriter, _ name: String, id: UInt64, parent: ExportSpanContext, kind: SpanKind = .internal,
                      start: UInt64, end: UInt64, error: (any Error)?, _ attributes: (inout SpanAttributeSink) -> Void) {
        let own = ExportSpanContext(traceHigh: parent.traceHigh, traceLow: parent.traceLow, spanID: id, sampled: true,
                                    traceState: parent.traceState)
        w.message(2) { s in
            s.head(own, parentSpanID: parent.spanID, name: name, kind: kind, start: start, end: end)
            var sink = SpanAttributeSink(writer: s)
            attributes(&sink)
            s = sink.writer!
            if let error {
                s.exception(error, at: max(start, end))
                s.status(SpanStatus(code: .error))
            }
        }
    }

    /// A span whose ids and attributes are known already (a request trace's server span).
    func record(_ name: String, position: ExportSpanContext, parentSpanID: UInt64, kind: SpanKind, start: UInt64, end: UInt64,
                encodedAttributes: [UInt8], status: SpanStatus?) {
        queue.record { w, _ in
            w.message(2) { s in
                s.head(position, parentSpanID: parentSpanID, name: name, kind: kind, start: start, end: end)
                encodedAttributes.withUnsafeBytes { s.raw($0) }
                if let status { s.status(status) }
            }
        }
    }

    public func forceFlush() { queue.flushSoon() }

    public func inject<Carrier, Inject>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject)
    where Inject: Injector, Carrier == Inject.Carrier {
        guard let position = context[ContextKey.self] else { return }
        injector.inject(position.traceparent, forKey: "traceparent", into: &carrier)
        if let state = position.traceState, !state.isEmpty { injector.inject(state, forKey: "tracestate", into: &carrier) }
    }

    public func extract<Carrier, Extract>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract)
    where Extract: Extractor, Carrier == Extract.Carrier {
        guard let parent = extractor.extract(key: "traceparent", from: carrier),
              let position = ExportSpanContext(traceparent: parent, tracestate: extractor.extract(key: "tracestate", from: carrier))
        else { return }
        context[ContextKey.self] = position
    }
}

/// xoshiro256** (Blackman and Vigna), seeded once from the system generator: span ids without a
/// `getrandom` call per id.
struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init<G: RandomNumberGenerator>(seed source: G) {
        var source = source
        s = (source.next(), source.next(), source.next(), source.next())
        if s.0 | s.1 | s.2 | s.3 == 0 { s.0 = 0x9E37_79B9_7F4A_7C15 }
    }

    /// A non-zero draw (an id).
    mutating func nonZero() -> UInt64 {
        var id = next()
        while id == 0 { id = next() }
        return id
    }

    mutating func next() -> UInt64 {
        let result = (s.1 &* 5).rotatedLeft(7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3.rotatedLeft(45)
        return result
    }
}

/// A xoshiro256** generator per thread, seeded from the system's generator the first time the
/// thread draws, freed when the thread ends.
enum ThreadIDs {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { $0?.deallocate() }
        return key
    }()

    /// Runs `body` with the calling thread's generator.
    static func draw<T>(_ body: (inout Xoshiro256) -> T) -> T {
        if let raw = pthread_getspecific(key) { return body(&raw.assumingMemoryBound(to: Xoshiro256.self).pointee) }
        let generator = UnsafeMutablePointer<Xoshiro256>.allocate(capacity: 1)
        generator.initialize(to: Xoshiro256(seed: SystemRandomNumberGenerator()))
        pthread_setspecific(key, generator)
        return body(&generator.pointee)
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(_ k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}

/// Lower-case hex of ids, and back.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func string(_ words: UInt64...) -> String {
        String(unsafeUninitializedCapacity: words.count * 16) { buffer in
            var i = 0
            for word in words {
                for shift in stride(from: 60, through: 0, by: -4) {
                    buffer[i] = digits[Int((word >> UInt64(shift)) & 0xF)]
                    i += 1
                }
            }
            return i
        }
    }

    static func value(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        var v: UInt64 = 0
        for c in bytes {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt64(c - UInt8(ascii: "a") + 10)
            default: return nil
            }
        }
        return v
    }
}
