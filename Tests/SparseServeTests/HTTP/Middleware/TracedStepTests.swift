import HTTPServer
import InMemoryTracing
import XCTest
@testable import SparseServe

/// A traced step records a child span named for it with its outcome, and outside a trace is
/// exactly the inner step. (RequestTraceTests covers an answering step.)
final class TracedStepTests: XCTestCase {
    func testAPassingStepIsRecordedAsPassed() throws {
        let tracer = InMemoryTracer()
        let step = TracedStep(name: "authentication",
                              step: APIKeyAuth(serverKeys: ["0123456789abcdef0123"], publicGroups: [], endpointKeys: { _ in [] }))
        let request = HTTPRequest(method: "GET", target: "/v2/models/m", headers: HTTPHeaders([("Authorization", "Bearer 0123456789abcdef0123")]))
        let route = try Route(path: request.path)
        RequestTracing(tracer: tracer).trace(request, route: route, respond: { _ in }) { respond in
            var r = respond
            XCTAssertNil(step.handle(request, route: route, respond: &r))
            respond(HTTPResponse(status: 200))
        }
        let spans = tracer.finishedSpans
        let span = try XCTUnwrap(spans.first { $0.operationName == "authentication" })
        XCTAssertEqual(span.attributes["sparseserve.step.result"]?.toSpanAttribute(), .string("passed"))
        let root = try XCTUnwrap(spans.first { $0.kind == .server })
        XCTAssertEqual(span.parentSpanID, root.spanID)
        XCTAssertLessThanOrEqual(span.startInstant.nanosecondsSinceEpoch, span.endInstant.nanosecondsSinceEpoch)
    }

    func testWithoutATraceNothingIsRecorded() throws {
        let tracer = InMemoryTracer()
        let step = TracedStep(name: "cors", step: MethodCheck())
        var respond: Responder = { _ in }
        let request = HTTPRequest(method: "GET", target: "/v2/models/m/infer")
        XCTAssertEqual(step.handle(request, route: try Route(path: request.path), respond: &respond)?.status, 405)
        XCTAssertTrue(tracer.finishedSpans.isEmpty)
    }
}
