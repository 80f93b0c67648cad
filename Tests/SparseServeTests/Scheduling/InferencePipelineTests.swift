import Foundation
import HTTPServer
import SparseJSON
import SparseModels
import XCTest
@testable import SparseServe

/// InferencePipeline: admission to the compute queue, decode, a direct or batched run, encode,
/// and every failure answered in the calling protocol's own error shape.
final class InferencePipelineTests: XCTestCase {
    struct EncoderBroke: Error {}

    /// A codec decoding v2 bodies; its encoder answers the rows of `probabilities`, its errors "E<status>:<message>".
    func codec(_ body: [UInt8], decoded: (@Sendable () throws -> Void)? = nil,
               encode: (@Sendable ([String: Tensor]) throws -> Void)? = nil) -> ProtocolCodec {
        ProtocolCodec(decode: { model in
            try decoded?()
            return try V2Codec.decodeRequest(body, inputs: model.inputs, outputs: model.outputs)
        }, encode: { _, _, results in
            try encode?(results)
            return HTTPResponse(status: 200, body: Array("rows=\(results["probabilities"]?.shape.first ?? -1)".utf8))
        }, error: { status, message in
            HTTPResponse(status: status, body: Array("E\(status):\(message)".utf8))
        })
    }

    func text(_ r: HTTPResponse) -> String { String(decoding: r.body, as: UTF8.self) }
    func pixels(_ rows: Int) -> [UInt8] { v2Body("input", (0..<rows * 64).map { Float($0 % 17) }, shape: [rows, 64]) }

    func testDirectAndBatchedRunsEncodeTheirResults() throws {
        let service = try startedService(self, endpoints: #"[{"name": "digits-direct", "model": "models/digits-mlp", "batching": {"maxBatchSize": 1},"#
                                         + #""gzip": {"minimumBytes": 123}}, {"name": "digits", "model": "models/digits-mlp"}]"#)
        let direct = try service.repository.endpoint(named: "digits-direct", version: nil)
        XCTAssertNil(direct.scheduler)
        let answer = try response { service.pipeline.run(endpoint: direct, codec: codec(pixels(3)), clientGone: { false }, respond: $0) }
        XCTAssertEqual(text(answer), "rows=3")
        XCTAssertEqual(answer.compressionMinimumBytes, 123, "the endpoint's gzip threshold")
        let batched = try service.repository.endpoint(named: "digits", version: nil)
        XCTAssertNotNil(batched.scheduler)
        let answers = (0..<6).map { _ in ResponseSink() }
        let group = DispatchGroup()
        for (i, sink) in answers.enumerated() {
            group.enter()
            let record = sink.responder
            service.pipeline.run(endpoint: batched, codec: codec(pixels(i + 1)), clientGone: { false }) { record($0); group.leave() }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(answers.map { text($0.all[0]) }, (1...6).map { "rows=\($0)" }, "each request gets its own rows back")
    }

    func testEveryFailureIsAnsweredInTheProtocolsErrorShape() throws {
        let service = try startedService(self)
        let before = statistics(service, "digits-direct")
        for name in ["digits", "digits-direct"] {
            let endpoint = try service.repository.endpoint(named: name, version: nil)
            func run(_ codec: ProtocolCodec) throws -> HTTPResponse {
                try response { service.pipeline.run(endpoint: endpoint, codec: codec, clientGone: { false }, respond: $0) }
            }
            let refused = try run(codec(pixels(1), decoded: { throw ProtocolError(422, "no thanks") }))
            XCTAssertEqual(refused.status, 422)
            XCTAssertEqual(text(refused), "E422:no thanks")
            let malformed = try run(codec(Array("{".utf8)))
            XCTAssertEqual(malformed.status, 400)
            XCTAssertTrue(text(malformed).hasPrefix("E400:invalid JSON at byte 1"), text(malformed))
            let broken = try run(codec(pixels(1), encode: { _ in throw EncoderBroke() }))
            XCTAssertEqual(broken.status, 500)
            XCTAssertTrue(text(broken).hasPrefix("E500:inference failed: EncoderBroke"), text(broken))
            // The endpoint keeps serving after each failure.
            XCTAssertEqual(text(try run(codec(pixels(2)))), "rows=2", name)
        }
        let after = statistics(service, "digits-direct")
        XCTAssertEqual(after.fail - before.fail, 3)
        XCTAssertEqual(after.success - before.success, 1)
        XCTAssertEqual(after.rows - before.rows, 2)
    }

    /// A full compute queue refuses at admission with 503 and Retry-After, in the codec's shape;
    /// the admitted requests still finish.
    func testAFullComputeQueueIsRefusedWith503() throws {
        let service = try startedService(self)
        let endpoint = try service.repository.endpoint(named: "digits-direct", version: nil)
        let queue = ComputeQueue(threads: 1, maxQueueSize: 1)
        defer { queue.shutdown() }
        let pipeline = InferencePipeline(compute: queue, metrics: service.metrics, logger: silentLogger)
        let release = DispatchSemaphore(value: 0)
        let held = codec(pixels(1), decoded: { release.wait() })
        let first = ResponseSink(), second = ResponseSink()
        pipeline.run(endpoint: endpoint, codec: held, clientGone: { false }, respond: first.responder)
        let deadline = Date().addingTimeInterval(10)
        while queue.runningCount == 0 && Date() < deadline { usleep(1000) }
        pipeline.run(endpoint: endpoint, codec: held, clientGone: { false }, respond: second.responder)
        let refused = try response { pipeline.run(endpoint: endpoint, codec: held, clientGone: { false }, respond: $0) }
        XCTAssertEqual(refused.status, 503)
        XCTAssertTrue(text(refused).hasPrefix("E503:server is overloaded: 1 requests are already queued"), text(refused))
        XCTAssertEqual(refused.headers["Retry-After"], "1")
        release.signal()
        release.signal()
        let finished = Date().addingTimeInterval(30)
        while (first.all.isEmpty || second.all.isEmpty) && Date() < finished { usleep(1000) }
        XCTAssertEqual(first.all.map(text), ["rows=1"])
        XCTAssertEqual(second.all.map(text), ["rows=1"])
    }
}
