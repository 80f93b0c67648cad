import Foundation
import Tracing

/// Writes batches of finished spans as an OTLP `ExportTraceServiceRequest` (protobuf, the body of
/// an OTLP/HTTP `POST /v1/traces`): one ResourceSpans with the service's resource, one ScopeSpans.
/// Field numbers are those of opentelemetry-proto's `trace/v1/trace.proto`,
/// `common/v1/common.proto` and `collector/trace/v1/trace_service.proto`.
public struct OTLPTraceEncoder: Sendable {
    /// Resource attributes (`service.name` first).
    public let resource: [(String, String)]
    public static let scopeName = "sparse-serve"

    public init(resource: [(String, String)]) { self.resource = resource }

    /// `service.name`, the SDK's name and language, and `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k=v`).
    public static func resource(serviceName: String, environment: [String: String]) -> [(String, String)] {
        var out = [("service.name", serviceName), ("telemetry.sdk.name", "sparse-serve"), ("telemetry.sdk.language", "swift")]
        for pair in (environment["OTEL_RESOURCE_ATTRIBUTES"] ?? "").split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty, kv[0] != "service.name" else { continue }
            out.append((kv[0], kv[1].removingPercentEncoding ?? kv[1]))
        }
        return out
    }

    public func encode(_ spans: [FinishedSpan]) -> [UInt8] {
        var w = ProtoWriter()
        w.bytes.reserveCapacity(64 + spans.count * 160)
        w.message(1) { rs in                                    // ExportTraceServiceRequest.resource_spans
            rs.message(1) { r in                                // ResourceSpans.resource
                for (key, value) in resource { r.message(1) { $0.keyValue(key, .string(value)) } }
            }
            rs.message(2) { ss in                               // ResourceSpans.scope_spans
                ss.message(1) { $0.string(1, Self.scopeName); $0.string(2, InferenceService.version) }
                for span in spans { ss.message(2) { $0.span(span) } }
            }
        }
        return w.bytes
    }
}

/// Protobuf wire encoding into one byte array. A nested message is written in place and its
/// length prefix inserted after it is complete.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }

    mutating func uint(_ field: UInt64, _ value: UInt64) {
        tag(field, 0)
        varint(value)
    }

    mutating func fixed64(_ field: UInt64, _ value: UInt64) {
        tag(field, 1)
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ field: UInt64, _ value: String) {
        var value = value
        tag(field, 2)
        value.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// `bytes` field of a big-endian 64-bit id (a span id).
    mutating func id(_ field: UInt64, _ word: UInt64) {
        tag(field, 2)
        varint(8)
        withUnsafeBytes(of: word.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// `bytes` field of a big-endian 128-bit id (a trace id) given as two 64-bit halves.
    mutating func id(_ field: UInt64, _ high: UInt64, _ low: UInt64) {
        tag(field, 2)
        varint(16)
        withUnsafeBytes(of: high.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: low.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func message(_ field: UInt64, _ body: (inout ProtoWriter) -> Void) {
        tag(field, 2)
        let start = bytes.count
        body(&self)
        var length = UInt64(bytes.count - start)
        var prefix: (UInt64, Int) = (0, 0)  // up to 8 varint bytes packed little-endian, and their count
        repeat {
            let byte = UInt64(length & 0x7F) | (length >= 0x80 ? 0x80 : 0)
            prefix.0 |= byte << (8 * UInt64(prefix.1))
            prefix.1 += 1
            length >>= 7
        } while length > 0
        withUnsafeBytes(of: prefix.0.littleEndian) { bytes.insert(contentsOf: $0.prefix(prefix.1), at: start) }
    }
}

extension ProtoWriter {
    /// `opentelemetry.proto.trace.v1.Span`.
    mutating func span(_ s: FinishedSpan) {
        id(1, s.context.traceHigh, s.context.traceLow)
        id(2, s.context.spanID)
        if let state = s.context.traceState, !state.isEmpty { string(3, state) }
        if s.parentSpanID != 0 { id(4, s.parentSpanID) }
        string(5, s.name)
        uint(6, Self.kind(s.kind))
        fixed64(7, s.start)
        fixed64(8, s.end)
        for (key, value) in s.attributes.pairs { message(9) { $0.keyValue(key, value) } }
        for event in s.events {
            message(11) { e in
                e.fixed64(1, event.nanosecondsSinceEpoch)
                e.string(2, event.name)
                event.attributes.forEach { key, value in e.message(3) { $0.keyValue(key, value) } }
            }
        }
        if let status = s.status {
            message(15) { st in
                if let text = status.message { st.string(2, text) }
                st.uint(3, status.code == .ok ? 1 : 2)
            }
        }
    }

    static func kind(_ kind: SpanKind) -> UInt64 {
        switch kind {
        case .internal: return 1
        case .server: return 2
        case .client: return 3
        case .producer: return 4
        case .consumer: return 5
        }
    }

    /// `KeyValue { key = 1; value = 2 (AnyValue) }`.
    mutating func keyValue(_ key: String, _ value: SpanAttribute) {
        string(1, key)
        message(2) { $0.anyValue(value) }
    }

    /// `AnyValue`: string 1, bool 2, int 3, double 4, array 5 (`ArrayValue { values = 1 }`).
    mutating func anyValue(_ value: SpanAttribute) {
        switch value {
        case .string(let v): string(1, v)
        case .bool(let v): uint(2, v ? 1 : 0)
        case .int64(let v): uint(3, UInt64(bitPattern: v))
        case .int32(let v): uint(3, UInt64(bitPattern: Int64(v)))
        case .double(let v): fixed64(4, v.bitPattern)
        case .stringArray(let v): message(5) { a in for x in v { a.message(1) { $0.string(1, x) } } }
        case .int64Array(let v): message(5) { a in for x in v { a.message(1) { $0.uint(3, UInt64(bitPattern: x)) } } }
        case .int32Array(let v): message(5) { a in for x in v { a.message(1) { $0.uint(3, UInt64(bitPattern: Int64(x))) } } }
        case .doubleArray(let v): message(5) { a in for x in v { a.message(1) { $0.fixed64(4, x.bitPattern) } } }
        case .boolArray(let v): message(5) { a in for x in v { a.message(1) { $0.uint(2, x ? 1 : 0) } } }
        case .stringConvertible(let v): string(1, v.description)
        case .stringConvertibleArray(let v): message(5) { a in for x in v { a.message(1) { $0.string(1, x.description) } } }
        default: string(1, "\(value)")
        }
    }
}
