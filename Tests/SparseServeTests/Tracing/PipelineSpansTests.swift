import Dispatch
import HTTPServer
import InMemoryTracing
import Logging
import SparseModels
import Tracing
import XCTest
@testable import SparseServe

/// The child spans the inference pipeline records, directly and through the batcher.
final class PipelineSpansTests: XCTestCase {
    func testDirectAndBatchedRequestsRecordTheirStages() throws {
        for batched in [false, true] {
            let tracer = InMemoryTracer()
            let compute = ComputeQueue(threads: 1, maxQueueSize: 10)
            let endpoint = Endpoint(config: EndpointConfig(name: "m", modelPath: "/none"), model: DoublingModel())
            if batched { endpoint.scheduler = BatchScheduler(model: endpoint.model, config: BatchingConfig(), compute: compute, lane: "m") }
            let pipeline = InferencePipeline(compute: compute, metrics: ServerMetrics(), logger: Logger(label: "test"))
            let codec = ProtocolCodec(decode: { _ in
                InferenceRequest(id: nil, inputs: ["x": Tensor(shape: [2, 2], storage: .fp32([1, 2, 3, 4]))], requestedOutputs: nil)
            }, encode: { _, _, _ in HTTPResponse(status: 200) })
            let answered = expectation(description: "answered")
            let request = HTTPRequest(method: "POST", target: "/v2/models/m/infer", headers: HTTPHeaders([]))
            RequestTracing(tracer: tracer).trace(request, route: try Route(path: request.path), respond: { _ in answered.fulfill() }) { respond in
                pipeline.run(endpoint: endpoint, codec: codec, clientGone: { false }, respond: respond)
            }
            wait(for: [answered], timeout: 10)
            let spans = tracer.finishedSpans
            let root = try XCTUnwrap(spans.first { $0.kind == .server })
            let children = spans.filter { $0.parentSpanID == root.spanID }
            let names = children.map(\.operationName)
            XCTAssertEqual(Set(names), ["queue wait", "decode", "batch forward", "encode"], "batched: \(batched)")
            XCTAssertEqual(names.filter { $0 == "queue wait" }.count, batched ? 2 : 1)
            let forward = try XCTUnwrap(children.first { $0.operationName == "batch forward" })
            XCTAssertEqual(forward.attributes["sparseserve.batch.rows"]?.toSpanAttribute(), .int64(2))
            XCTAssertEqual(forward.attributes["sparseserve.batch.requests"]?.toSpanAttribute(), .int64(1))
            XCTAssertEqual(forward.attributes["sparseserve.batch.tokens"]?.toSpanAttribute(), .int64(2), "a row counts as a token")
            for child in children {
                XCTAssertLessThanOrEqual(root.startInstant.nanosecondsSinceEpoch, child.startInstant.nanosecondsSinceEpoch)
                XCTAssertLessThanOrEqual(child.endInstant.nanosecondsSinceEpoch, root.endInstant.nanosecondsSinceEpoch)
            }
        }
    }
}
