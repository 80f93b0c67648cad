import Dispatch
import Foundation
import HTTPServer
import InMemoryTracing
import SparseModels
import Tracing
import XCTest
@testable import SparseServe

final class RequestTraceTests: XCTestCase {
    func testServerSpanCarriesRouteStatusAndChildren() throws {
        let tracer = InMemoryTracer()
        let tracing = RequestTracing(tracer: tracer)
        let sink = ResponseSink()
        let request = HTTPRequest(method: "POST", target: "/v2/models/digits/infer", headers: HTTPHeaders([]))
        tracing.trace(request, route: try Route(path: request.path), respond: sink.responder) { respond in
            let trace = try! XCTUnwrap(RequestTrace.current)
            let now = DispatchTime.now().uptimeNanoseconds
            trace.record("decode", from: now, to: now + 1_000) { $0.set("k", 1) }
            trace.record("encode", from: now + 2_000, to: now + 1_000, error: InvalidInputError("bad"))
            var response = HTTPResponse(status: 503)
            response.headers.set(name: "X-Request-ID", value: "r-1")
            respond(response)
        }
        XCTAssertNil(RequestTrace.current, "the trace is bound only while the request is handled")
        let spans = tracer.finishedSpans
        let root = try XCTUnwrap(spans.first { $0.operationName == "POST /v2/models/{model}/infer" })
        XCTAssertEqual(root.kind, .server)
        XCTAssertEqual(root.attributes["http.response.status_code"]?.toSpanAttribute(), .int64(503))
        XCTAssertEqual(root.attributes["sparseserve.model"]?.toSpanAttribute(), .string("digits"))
        XCTAssertEqual(root.attributes["sparseserve.request_id"]?.toSpanAttribute(), .string("r-1"))
        XCTAssertEqual(root.status?.code, .error, "5xx marks the server span as an error")
        let decode = try XCTUnwrap(spans.first { $0.operationName == "decode" })
        XCTAssertEqual(decode.parentSpanID, root.spanID)
        XCTAssertEqual(decode.endInstant.nanosecondsSinceEpoch - decode.startInstant.nanosecondsSinceEpoch, 1_000)
        XCTAssertEqual(decode.traceID, root.traceID)
        let encode = try XCTUnwrap(spans.first { $0.operationName == "encode" })
        XCTAssertEqual(encode.status?.code, .error)
        XCTAssertEqual(encode.endInstant.nanosecondsSinceEpoch, encode.startInstant.nanosecondsSinceEpoch, "an end before the start is clamped")
        XCTAssertEqual(sink.all.map(\.status), [503])
    }

    func testWithSpanExportTracerChildrenAreRecordedDirectlyUnderTheServerSpan() throws {
        let queue = SpanExportQueue()
        let tracing = RequestTracing(tracer: SpanExportTracer(queue: queue, sampleRatio: 1))
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let request = HTTPRequest(method: "POST", target: "/v2/models/digits/infer", headers: HTTPHeaders([("traceparent", caller)]))
        tracing.trace(request, route: try Route(path: request.path), respond: { _ in }) { respond in
            let trace = try! XCTUnwrap(RequestTrace.current)
            XCTAssertEqual(trace.traceID, "4bf92f3577b34da6a3ce929d0e0e4736")
            let now = DispatchTime.now().uptimeNanoseconds
            trace.record("decode", from: now, to: now + 1_000) { $0.set("k", 1) }
            trace.forward(BatchForward(started: now + 1_000, finished: now + 5_000, requests: 2, rows: 3, tokens: 9))
            var response = HTTPResponse(status: 200)
            response.headers.set(name: "X-Request-ID", value: "r-2")
            respond(response)
        }
        queue.close()
        let spans = queue.next().batch.spans
        XCTAssertEqual(spans.map(\.name), ["decode", "batch forward", "POST /v2/models/{model}/infer"])
        let root = spans[2]
        XCTAssertEqual(root.parentSpanID, 0x00f0_67aa_0ba9_02b7, "the caller's span is the server span's parent")
        XCTAssertEqual(root.kind, .server)
        XCTAssertEqual(root.attributes.pairs.map(\.name), ["http.request.method", "url.path", "http.route", "sparseserve.model",
                                                           "http.response.status_code", "sparseserve.request_id"])
        XCTAssertEqual(root.attributes["http.response.status_code"], .int64(200))
        XCTAssertEqual(root.attributes["sparseserve.request_id"], .string("r-2"))
        for child in spans[..<2] {
            XCTAssertEqual(child.parentSpanID, root.context.spanID)
            XCTAssertEqual(child.context.traceIDHex, "4bf92f3577b34da6a3ce929d0e0e4736")
        }
        XCTAssertEqual(spans[0].end - spans[0].start, 1_000)
        XCTAssertEqual(spans[1].attributes["sparseserve.batch.tokens"], .int64(9))
        XCTAssertEqual(spans[1].attributes["sparseserve.batch.requests"], .int64(2))
    }

    func testTracedStepRecordsTheStepAndItsOutcome() throws {
        let tracer = InMemoryTracer()
        let tracing = RequestTracing(tracer: tracer)
        let auth = APIKeyAuth(serverKeys: ["0123456789abcdef0123"], publicGroups: [], endpointKeys: { _ in [] })
        let step = TracedStep(name: "authentication", step: auth)
        let request = HTTPRequest(method: "GET", target: "/v2/models/m", headers: HTTPHeaders([]))
        tracing.trace(request, route: try Route(path: request.path), respond: { _ in }) { respond in
            var r = respond
            XCTAssertEqual(step.handle(request, route: try! Route(path: request.path), respond: &r)?.status, 401)
            respond(HTTPResponse(status: 401))
        }
        let span = try XCTUnwrap(tracer.finishedSpans.first { $0.operationName == "authentication" })
        XCTAssertEqual(span.attributes["sparseserve.step.result"]?.toSpanAttribute(), .string("answered 401"))
        // outside a trace the step only runs the inner one
        var respond: Responder = { _ in }
        XCTAssertEqual(step.handle(request, route: try Route(path: request.path), respond: &respond)?.status, 401)
        XCTAssertEqual(tracer.finishedSpans.filter { $0.operationName == "authentication" }.count, 1)
    }

    func testRefusedHeadGetsAServerSpanWithAnAuthenticationChild() throws {
        let tracer = InMemoryTracer()
        RequestTracing(tracer: tracer).refused(HTTPRequest(method: "POST", target: "/v2/models/m/infer", headers: HTTPHeaders([])),
                                               route: try Route(path: "/v2/models/m/infer"), status: 401, requestID: "x")
        XCTAssertEqual(Set(tracer.finishedSpans.map(\.operationName)), ["POST /v2/models/{model}/infer", "authentication"])
    }

    func testServerSpanStartsAtTheHeadAndReadBodyCoversTheWaitForTheBody() throws {
        let tracer = InMemoryTracer()
        var request = HTTPRequest(method: "POST", target: "/v2/models/digits/infer", headers: HTTPHeaders([]), body: Array(repeating: 7, count: 300))
        let headAt = DispatchTime.now().uptimeNanoseconds
        request.headReceivedAt = headAt
        Thread.sleep(forTimeInterval: 0.02)  // the body arrives later
        let routed = DispatchTime.now().uptimeNanoseconds
        RequestTracing(tracer: tracer).trace(request, route: try Route(path: request.path), respond: { _ in }) { respond in
            respond(HTTPResponse(status: 200))
        }
        let spans = tracer.finishedSpans
        let root = try XCTUnwrap(spans.first { $0.kind == .server })
        let read = try XCTUnwrap(spans.first { $0.operationName == "read body" })
        XCTAssertEqual(read.parentSpanID, root.spanID)
        XCTAssertEqual(read.startInstant.nanosecondsSinceEpoch, root.startInstant.nanosecondsSinceEpoch, "the server span starts at the head")
        let readNs = read.endInstant.nanosecondsSinceEpoch - read.startInstant.nanosecondsSinceEpoch
        XCTAssertGreaterThanOrEqual(readNs, routed - headAt, "the time between head and routing is inside the server span")
        XCTAssertEqual(read.attributes["http.request.body.size"]?.toSpanAttribute(), .int64(300))
        // no body, or a request built by hand (no head instant): no read body span
        for (headReceivedAt, body) in [(headAt, [UInt8]()), (0, [UInt8](repeating: 1, count: 3))] {
            let other = InMemoryTracer()
            var r = HTTPRequest(method: "POST", target: "/v2/models/digits/infer", headers: HTTPHeaders([]), body: body)
            r.headReceivedAt = headReceivedAt
            RequestTracing(tracer: other).trace(r, route: try Route(path: r.path), respond: { _ in }) { $0(HTTPResponse(status: 200)) }
            XCTAssertEqual(other.finishedSpans.map(\.operationName), ["POST /v2/models/{model}/infer"])
        }
    }

    func testRefusedHeadsAuthenticationSpanStartsAtTheHead() throws {
        let tracer = InMemoryTracer()
        var head = HTTPRequest(method: "POST", target: "/v2/models/m/infer", headers: HTTPHeaders([]))
        head.headReceivedAt = DispatchTime.now().uptimeNanoseconds - 3_000_000
        RequestTracing(tracer: tracer).refused(head, route: try Route(path: head.path), status: 401, requestID: nil)
        let root = try XCTUnwrap(tracer.finishedSpans.first { $0.kind == .server })
        let auth = try XCTUnwrap(tracer.finishedSpans.first { $0.operationName == "authentication" })
        XCTAssertEqual(auth.startInstant.nanosecondsSinceEpoch, root.startInstant.nanosecondsSinceEpoch)
        XCTAssertGreaterThanOrEqual(auth.endInstant.nanosecondsSinceEpoch - auth.startInstant.nanosecondsSinceEpoch, 3_000_000)
    }

    func testRouteTemplatesHaveNoNames() throws {
        XCTAssertEqual(RequestTracing.template(try XCTUnwrap(Route(path: "/v2/models/secret-name/versions/3/infer"))),
                       "/v2/models/{model}/versions/{version}/infer")
        XCTAssertEqual(RequestTracing.template(try XCTUnwrap(Route(path: "/v1/embeddings"))), "/v1/embeddings")
    }

    func testARequestsSpansAreQueuedWithItsServerSpanAndLateOnesAlone() throws {
        let queue = SpanExportQueue()
        let tracing = RequestTracing(tracer: SpanExportTracer(queue: queue, sampleRatio: 1))
        let request = HTTPRequest(method: "POST", target: "/v2/models/digits/infer", headers: HTTPHeaders([]))
        var kept: RequestTrace?
        tracing.trace(request, route: try Route(path: request.path), respond: { _ in }) { respond in
            let trace = try! XCTUnwrap(RequestTrace.current)
            kept = trace
            let now = DispatchTime.now().uptimeNanoseconds
            for i in 0..<20 { trace.record("step \(i)", from: now, to: now + 1) { $0.set("payload", String(repeating: "x", count: 200)) } }
            XCTAssertEqual(queue.count, 0, "nothing is queued before the server span ends (the request's memory grew past 1 KiB)")
            for i in 0..<70 { trace.record("big \(i)", from: now, to: now + 1) { $0.set("payload", String(repeating: "y", count: 1000)) } }
            XCTAssertGreaterThan(queue.count, 0, "spans past the request's 64 KiB go to the queue by themselves")
            respond(HTTPResponse(status: 200))
        }
        XCTAssertEqual(queue.count, 91)
        let now = DispatchTime.now().uptimeNanoseconds
        kept?.record("late", from: now, to: now + 1)
        XCTAssertEqual(queue.count, 92, "a span ending after the server span is queued alone")
        queue.close()
        let spans = queue.next().batch.spans
        let root = try XCTUnwrap(spans.first { $0.kind == .server })
        XCTAssertEqual(Set(spans.map(\.context.spanID)).count, 92, "the span ids of one trace differ")
        XCTAssertTrue(spans.allSatisfy { $0.context.traceIDHex == root.context.traceIDHex })
        XCTAssertTrue(spans.filter { $0.kind != .server }.allSatisfy { $0.parentSpanID == root.context.spanID })
        XCTAssertEqual(spans.filter { $0.name.hasPrefix("step") }.count, 20)
    }
}
