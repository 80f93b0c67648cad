import Tracing
import XCTest
@testable import SparseServe

final class ExportingSpanTests: XCTestCase {
    func testEndQueuesTheSpanOnceWithWhatWasSet() {
        let queue = SpanExportQueue()
        let tracer = SpanExportTracer(queue: queue, sampleRatio: 1)
        let root = tracer.startSpan("GET /", context: .topLevel, ofKind: .server, at: SpanExportInstant(nanosecondsSinceEpoch: 100))
        let child = tracer.startSpan("work", context: root.context, ofKind: .internal, at: SpanExportInstant(nanosecondsSinceEpoch: 150))
        root.attributes["http.response.status_code"] = 200
        root.operationName = "GET /renamed"
        root.setStatus(SpanStatus(code: .error, message: "bad"))
        struct Broken: Error {}
        child.recordError(Broken())
        XCTAssertTrue(root.isRecording)
        child.end(at: SpanExportInstant(nanosecondsSinceEpoch: 160))
        root.end(at: SpanExportInstant(nanosecondsSinceEpoch: 90))
        root.end(at: SpanExportInstant(nanosecondsSinceEpoch: 300))
        XCTAssertFalse(root.isRecording)
        queue.close()
        let batch = queue.next().batch.spans
        XCTAssertEqual(batch.map(\.name), ["work", "GET /renamed"], "each span once, when it ends")
        let (c, r) = (batch[0], batch[1])
        XCTAssertEqual(c.parentSpanID, r.context.spanID)
        XCTAssertEqual(r.parentSpanID, 0)
        XCTAssertEqual(c.context.traceIDHex, r.context.traceIDHex)
        XCTAssertEqual([r.start, r.end], [100, 100], "an end before the start is clamped")
        XCTAssertEqual(r.status, SpanStatus(code: .error, message: "bad"))
        XCTAssertEqual(r.attributes.get("http.response.status_code"), .int64(200))
        XCTAssertEqual(c.events.first?.name, "exception")
        XCTAssertEqual(r.kind, .server)
    }

    func testAnUnsampledSpanKeepsNothing() {
        let queue = SpanExportQueue()
        let tracer = SpanExportTracer(queue: queue, sampleRatio: 0)
        let span = tracer.startSpan("x", context: .topLevel, ofKind: .server, at: DefaultTracerClock.now)
        span.attributes["a"] = 1
        XCTAssertFalse(span.isRecording)
        XCTAssertTrue(span.attributes.isEmpty)
        span.end()
        XCTAssertEqual(queue.count, 0)
        XCTAssertNotNil(span.context[SpanExportTracer.ContextKey.self], "but it still carries the trace onwards")
    }

    func testExportAttributesKeepOrderReplaceAndRemove() {
        var a: ExportAttributes = ["b": 1, "a": "x"]
        a["c"] = 2.5
        a["b"] = 7
        a["a"] = nil
        a["missing"] = nil
        XCTAssertEqual(a.pairs.map(\.name), ["b", "c"], "in the order first set; replacing keeps the place")
        XCTAssertEqual(a.get("b"), .int64(7))
        XCTAssertNil(a["a"])
        var spanAttributes = SpanAttributes()
        spanAttributes["k"] = "v"
        spanAttributes["n"] = 3
        let round = ExportAttributes(spanAttributes).spanAttributes
        XCTAssertEqual(round, spanAttributes)
        XCTAssertTrue(ExportAttributes().isEmpty)
    }
}
