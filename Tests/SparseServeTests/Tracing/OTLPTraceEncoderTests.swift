import Tracing
import XCTest
@testable import SparseServe

final class OTLPTraceEncoderTests: XCTestCase {
    /// A protobuf reader for the test: the fields of one message as (number, varint or bytes).
    enum Value: Equatable { case varint(UInt64), fixed64(UInt64), bytes([UInt8]) }

    static func fields(_ b: [UInt8]) -> [(Int, Value)] {
        var i = 0, out: [(Int, Value)] = []
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true { let c = b[i]; i += 1; v |= UInt64(c & 0x7F) << shift; shift += 7; if c < 0x80 { return v } }
        }
        while i < b.count {
            let key = varint()
            switch key & 7 {
            case 0: out.append((Int(key >> 3), .varint(varint())))
            case 1: out.append((Int(key >> 3), .fixed64(b[i..<i + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }))); i += 8
            case 2: let n = Int(varint()); out.append((Int(key >> 3), .bytes(Array(b[i..<i + n])))); i += n
            default: XCTFail("wire type \(key & 7)"); return out
            }
        }
        return out
    }

    static func bytes(_ fields: [(Int, Value)], _ number: Int) -> [[UInt8]] {
        fields.compactMap { if $0.0 == number, case .bytes(let b) = $0.1 { return b } else { return nil } }
    }

    func testABatchIsOneResourceWithItsScopeAndEverySpanField() throws {
        var span = FinishedSpan(context: ExportSpanContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                                           tracestate: "k=v")!,
                                parentSpanID: 0x1122_3344_5566_7788, name: "batch forward", kind: .server,
                                start: 1_700_000_000_000_000_001, end: 1_700_000_000_000_000_999)
        span.attributes["sparseserve.batch.rows"] = 300
        span.attributes["http.route"] = "/v2/models/{model}/infer"
        span.attributes["ratio"] = 0.5
        span.status = SpanStatus(code: .error, message: "failed")
        struct Broken: Error {}
        span.events = [FinishedSpan.exception(Broken(), at: 5)]
        let body = OTLPTraceEncoder(resource: [("service.name", "svc")]).encode([span, span])
        let request = Self.fields(body)
        XCTAssertEqual(request.count, 1)
        let resourceSpans = Self.fields(Self.bytes(request, 1)[0])
        let resource = Self.fields(Self.bytes(resourceSpans, 1)[0])
        let kv = Self.fields(Self.bytes(resource, 1)[0])
        XCTAssertEqual(Self.bytes(kv, 1)[0], Array("service.name".utf8))
        XCTAssertEqual(Self.fields(Self.bytes(kv, 2)[0]).first?.1, .bytes(Array("svc".utf8)))
        let scopeSpans = Self.fields(Self.bytes(resourceSpans, 2)[0])
        XCTAssertEqual(Self.fields(Self.bytes(scopeSpans, 1)[0]).first?.1, .bytes(Array("sparse-serve".utf8)))
        let spans = Self.bytes(scopeSpans, 2)
        XCTAssertEqual(spans.count, 2)
        let s = Self.fields(spans[0])
        XCTAssertEqual(Self.bytes(s, 1)[0], [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36])
        XCTAssertEqual(Self.bytes(s, 2)[0], [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        XCTAssertEqual(Self.bytes(s, 3)[0], Array("k=v".utf8))
        XCTAssertEqual(Self.bytes(s, 4)[0], [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        XCTAssertEqual(Self.bytes(s, 5)[0], Array("batch forward".utf8))
        XCTAssertTrue(s.contains { $0.0 == 6 && $0.1 == .varint(2) }, "SPAN_KIND_SERVER")
        XCTAssertTrue(s.contains { $0.0 == 7 && $0.1 == .fixed64(1_700_000_000_000_000_001) })
        XCTAssertTrue(s.contains { $0.0 == 8 && $0.1 == .fixed64(1_700_000_000_000_000_999) })
        var attributes: [String: Value] = [:]
        for a in Self.bytes(s, 9) {
            let f = Self.fields(a)
            attributes[String(decoding: Self.bytes(f, 1)[0], as: UTF8.self)] = Self.fields(Self.bytes(f, 2)[0]).first?.1
        }
        XCTAssertEqual(attributes["sparseserve.batch.rows"], .varint(300))
        XCTAssertEqual(attributes["http.route"], .bytes(Array("/v2/models/{model}/infer".utf8)))
        XCTAssertEqual(attributes["ratio"], .fixed64(0.5.bitPattern))
        let event = Self.fields(Self.bytes(s, 11)[0])
        XCTAssertEqual(Self.bytes(event, 2)[0], Array("exception".utf8))
        let status = Self.fields(Self.bytes(s, 15)[0])
        XCTAssertEqual(Self.bytes(status, 2)[0], Array("failed".utf8))
        XCTAssertTrue(status.contains { $0.0 == 3 && $0.1 == .varint(2) }, "STATUS_CODE_ERROR")
    }

    func testLongNestedMessagesGetMultiByteLengths() {
        var span = FinishedSpan(context: ExportSpanContext(traceHigh: 1, traceLow: 2, spanID: 3, sampled: true, traceState: nil),
                                parentSpanID: 0, name: String(repeating: "x", count: 300), kind: .internal, start: 0, end: 0)
        span.attributes["long"] = .string(String(repeating: "y", count: 20_000))
        let body = OTLPTraceEncoder(resource: []).encode(Array(repeating: span, count: 3))
        let scopeSpans = Self.fields(Self.bytes(Self.fields(Self.bytes(Self.fields(body), 1)[0]), 2)[0])
        let spans = Self.bytes(scopeSpans, 2)
        XCTAssertEqual(spans.count, 3)
        XCTAssertEqual(Self.bytes(Self.fields(spans[2]), 5)[0].count, 300)
    }

    func testResourceTakesOtelResourceAttributes() {
        let r = OTLPTraceEncoder.resource(serviceName: "svc", environment: ["OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, k8s.pod.name=a%20b,service.name=other,bad"])
        XCTAssertEqual(r.first?.0, "service.name")
        XCTAssertEqual(r.first?.1, "svc")
        XCTAssertTrue(r.contains { $0 == ("deployment.environment", "prod") })
        XCTAssertTrue(r.contains { $0 == ("k8s.pod.name", "a b") })
        XCTAssertEqual(r.filter { $0.0 == "service.name" }.count, 1)
    }

    func testThePrefixAndTheSpansMakeTheRequest() {
        let span = FinishedSpan(context: ExportSpanContext(traceHigh: 1, traceLow: 2, spanID: 3, sampled: true, traceState: nil),
                                parentSpanID: 0, name: "decode", kind: .internal, start: 0, end: 5)
        let encoder = OTLPTraceEncoder(resource: [("service.name", "svc")])
        for count in [1, 1000] {  // one-byte and multi-byte lengths
            let spans = Array(repeating: span, count: count).flatMap(\.encoded)
            var prefix: [UInt8] = [9, 9]
            encoder.prefix(spanBytes: spans.count, into: &prefix)
            XCTAssertEqual(prefix + spans, encoder.encode(Array(repeating: span, count: count)))
        }
    }
}
