import Foundation
import Tracing

/// Wraps encoded spans (`SpanWriter`'s `ScopeSpans.spans` entries, back to back) into an OTLP
/// `ExportTraceServiceRequest` (protobuf, the body of an OTLP/HTTP `POST /v1/traces`): one
/// ResourceSpans with the service's resource, one ScopeSpans. The resource and scope are encoded
/// once; a request is their bytes, three length prefixes and the spans. Field numbers are those of
/// opentelemetry-proto's `common/v1/common.proto`, `trace/v1/trace.proto` and
/// `collector/trace/v1/trace_service.proto`.
public struct OTLPTraceEncoder: Sendable {
    /// Resource attributes (`service.name` first).
    public let resource: [(String, String)]
    public static let scopeName = "sparse-serve"
    /// `ResourceSpans.resource` and `ScopeSpans.scope`, each with its tag and length.
    private let resourceField: [UInt8], scopeField: [UInt8]

    public init(resource: [(String, String)]) {
        self.resource = resource
        resourceField = SpanWriter.encoded { r in
            r.message(1) { r in                                 // ResourceSpans.resource
                for (key, value) in resource { r.attribute(key, .string(value), field: 1) }
            }
        }
        scopeField = SpanWriter.encoded { $0.message(1) { $0.string(1, Self.scopeName); $0.string(2, InferenceService.version) } }  // ScopeSpans.scope
    }

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

    /// The request carrying `spans` (encoded span entries), written over `body`.
    public func request(spans: UnsafeRawBufferPointer, into body: inout [UInt8]) {
        prefix(spanBytes: spans.count, into: &body)
        body.append(contentsOf: spans)                          // ScopeSpans.spans
    }

    /// The bytes of a request before its `spanBytes` bytes of spans (lengths, resource, scope),
    /// written over `body`: the exporter sends them and the spans from the queue's memory as one
    /// request body without copying the spans.
    public func prefix(spanBytes: Int, into body: inout [UInt8]) {
        let scopeSpans = scopeField.count + spanBytes
        let resourceSpans = resourceField.count + 1 + SpanWriter.varintSize(UInt64(scopeSpans)) + scopeSpans
        body.removeAll(keepingCapacity: true)
        body.append(0x0A)                                       // ExportTraceServiceRequest.resource_spans
        Self.appendVarint(UInt64(resourceSpans), to: &body)
        body += resourceField
        body.append(0x12)                                       // ResourceSpans.scope_spans
        Self.appendVarint(UInt64(scopeSpans), to: &body)
        body += scopeField
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}
