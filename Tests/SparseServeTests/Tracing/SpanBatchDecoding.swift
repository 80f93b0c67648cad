import Tracing
@testable import SparseServe

/// Test helpers: encoded spans decoded back into `FinishedSpan`s (with `WireReader`), and
/// `FinishedSpan`s encoded the way the exporter writes them.
extension SpanBatch {
    /// The queued spans, in order.
    var spans: [FinishedSpan] { FinishedSpan.decode(entries: Array(bytes)) }
}

extension FinishedSpan {
    /// `ScopeSpans.spans` entries (field 2) back to back, decoded.
    static func decode(entries: [UInt8]) -> [FinishedSpan] {
        var reader = WireReader(bytes: entries[...]), out: [FinishedSpan] = []
        while let (field, body) = reader.nextBytes() { if field == 2 { out.append(decode(span: body)) } }
        return out
    }

    static func decode(span body: ArraySlice<UInt8>) -> FinishedSpan {
        var r = WireReader(bytes: body)
        var span = FinishedSpan(context: ExportSpanContext(traceHigh: 0, traceLow: 0, spanID: 0, sampled: true, traceState: nil),
                                parentSpanID: 0, name: "", kind: .internal, start: 0, end: 0)
        func word(_ b: ArraySlice<UInt8>) -> UInt64 { b.reduce(0) { $0 << 8 | UInt64($1) } }
        while let f = r.next() {
            switch f.field {
            case 1: (span.context.traceHigh, span.context.traceLow) = (word(f.bytes.prefix(8)), word(f.bytes.dropFirst(8)))
            case 2: span.context.spanID = word(f.bytes)
            case 3: span.context.traceState = String(decoding: f.bytes, as: UTF8.self)
            case 4: span.parentSpanID = word(f.bytes)
            case 5: span.name = String(decoding: f.bytes, as: UTF8.self)
            case 6: span.kind = [1: .internal, 2: .server, 3: .client, 4: .producer, 5: .consumer][f.value] ?? .internal
            case 7: span.start = f.value
            case 8: span.end = f.value
            case 9:
                for (k, v) in SpanWriter.decodeAttributes(attributeEntry(f.bytes)) {
                    span.attributes[k] = v
                }
            case 11: span.events.append(decodeEvent(f.bytes))
            case 15:
                var s = WireReader(bytes: f.bytes), message: String?, code = SpanStatus.Code.ok
                while let g = s.next() {
                    if g.field == 2 { message = String(decoding: g.bytes, as: UTF8.self) }
                    if g.field == 3 { code = g.value == 2 ? .error : .ok }
                }
                span.status = SpanStatus(code: code, message: message)
            default: break
            }
        }
        return span
    }

    private static func decodeEvent(_ bytes: ArraySlice<UInt8>) -> SpanEvent {
        var r = WireReader(bytes: bytes), name = "", at: UInt64 = 0, attributes = SpanAttributes()
        while let f = r.next() {
            if f.field == 1 { at = f.value }
            if f.field == 2 { name = String(decoding: f.bytes, as: UTF8.self) }
            if f.field == 3 {
                for (k, v) in SpanWriter.decodeAttributes(attributeEntry(f.bytes)) { attributes[k] = v }
            }
        }
        return SpanEvent(name: name, at: SpanExportInstant(nanosecondsSinceEpoch: at), attributes: attributes)
    }

    /// A `KeyValue`'s bytes as a span attribute entry (field 9), what `decodeAttributes` reads.
    private static func attributeEntry(_ keyValue: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = [0x4A]
        OTLPTraceEncoder.appendVarint(UInt64(keyValue.count), to: &out)
        return out + keyValue
    }

    /// This span as the exporter queues it (one `ScopeSpans.spans` entry).
    var encoded: [UInt8] { SpanWriter.encoded { $0.span(self) } }
}

extension OTLPTraceEncoder {
    /// The export request of `spans`.
    func encode(_ spans: [FinishedSpan]) -> [UInt8] {
        var body: [UInt8] = []
        spans.flatMap(\.encoded).withUnsafeBytes { request(spans: $0, into: &body) }
        return body
    }
}

extension SpanExportQueue {
    func push(_ span: FinishedSpan) { span.encoded.withUnsafeBytes { push($0) } }
}
