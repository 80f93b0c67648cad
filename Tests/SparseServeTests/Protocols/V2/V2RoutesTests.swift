import Foundation
import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// V2Routes on a running service, called directly (no sockets): metadata, health, readiness,
/// model metadata/config, inference and statistics, and the errors each answers with.
final class V2RoutesTests: XCTestCase {
    func testServerMetadataAndHealth() throws {
        let routes = V2Routes(service: try startedService(self))
        let metadata = try body(routes.serverMetadata())
        XCTAssertEqual(metadata["name"]?.stringValue, "sparse-serve")
        XCTAssertEqual(metadata["version"]?.stringValue, InferenceService.version)
        XCTAssertEqual(metadata["extensions"]?.arrayValue?.compactMap(\.stringValue), V2Routes.extensions)
        XCTAssertEqual(try body(routes.live())["live"], .bool(true))
        XCTAssertEqual(routes.ready().status, 200)
        XCTAssertEqual(try body(routes.ready())["ready"], .bool(true))
    }

    /// Listening but not loaded: the server and its models say not ready with 503.
    func testReadinessIs503UntilTheModelsAreLoaded() throws {
        let service = try startedService(self, load: false)
        let routes = V2Routes(service: service)
        XCTAssertEqual(routes.ready().status, 503)
        XCTAssertEqual(try body(routes.ready())["ready"], .bool(false))
        try service.loadEndpoints()
        XCTAssertEqual(routes.ready().status, 200)
        XCTAssertEqual(try routes.modelReady("digits", nil).status, 200)
    }

    func testModelMetadataReadinessAndConfig() throws {
        let routes = V2Routes(service: try startedService(self))
        let metadata = try body(try routes.modelMetadata("digits", nil))
        XCTAssertEqual(metadata["name"]?.stringValue, "digits")
        XCTAssertEqual(metadata["inputs"]?.arrayValue?.first?["name"]?.stringValue, "input")
        XCTAssertEqual(try body(try routes.modelReady("identity", "1")), .object([("name", .string("identity")), ("ready", .bool(true))]))
        let config = try body(try routes.modelConfig("digits", nil))
        XCTAssertEqual(config["max_batch_size"]?.integerValue, 8)
        XCTAssertEqual(statusOf { try routes.modelMetadata("nothing", nil) }?.status, 404)
        XCTAssertEqual(statusOf { try routes.modelReady("digits", "2") }?.status, 404)
        XCTAssertEqual(statusOf { try routes.modelConfig("nothing", nil) }?.message, "unknown model 'nothing'")
    }

    /// One request through each path (batched and direct) answers the model's outputs, and the
    /// statistics extension counts them.
    func testInferenceAndStatistics() throws {
        let service = try startedService(self)
        let routes = V2Routes(service: service)
        let before = statistics(service, "digits-direct")
        let pixels = (0..<128).map { Float($0 % 17) }
        for model in ["digits", "digits-direct"] {
            let request = HTTPRequest(method: "POST", target: "/v2/models/\(model)/infer", body: v2Body("input", pixels, shape: [2, 64]))
            let answer = try response { try routes.infer(model, nil, request, $0) }
            XCTAssertEqual(answer.status, 200, String(decoding: answer.body, as: UTF8.self))
            let outputs = try XCTUnwrap(try body(answer)["outputs"]?.arrayValue)
            let probabilities = try XCTUnwrap(outputs.first { $0["name"]?.stringValue == "probabilities" })
            XCTAssertEqual(probabilities["shape"]?.arrayValue?.compactMap(\.integerValue), [2, 10])
            let p = probabilities["data"]?.arrayValue?.compactMap(\.doubleValue) ?? []
            XCTAssertEqual(p.count, 20)
            XCTAssertEqual(p[0..<10].reduce(0, +), 1, accuracy: 1e-5)
        }
        let stats = try body(try routes.statistics("digits-direct", nil))["model_stats"]?.arrayValue
        XCTAssertEqual(stats?.count, 1)
        XCTAssertEqual(stats?.first?["name"]?.stringValue, "digits-direct")
        XCTAssertNotNil(stats?.first?["execution_count"]?.integerValue)
        let after = statistics(service, "digits-direct")
        XCTAssertEqual(after.rows - before.rows, 2, "rows")
        XCTAssertEqual(after.success - before.success, 1)
        XCTAssertEqual(try body(try routes.statistics(nil, nil))["model_stats"]?.arrayValue?.count, 3)
        XCTAssertEqual(statusOf { try routes.statistics("nothing", nil) }?.status, 404)
    }

    /// Bad requests: a header length that does not fit the body is refused before decoding; a
    /// body the model cannot take is a 400 from the pipeline; an unknown model a 404.
    func testBadInferenceRequests() throws {
        let routes = V2Routes(service: try startedService(self))
        let good = v2Body("input", [Float](repeating: 1, count: 64), shape: [1, 64])
        for length in ["x", "-1", "\(good.count + 1)"] {
            let request = HTTPRequest(method: "POST", target: "/", headers: HTTPHeaders([("Inference-Header-Content-Length", length)]), body: good)
            let refused = statusOf { try routes.infer("digits", nil, request) { _ in XCTFail("answered") } }
            XCTAssertEqual(refused?.status, 400)
            XCTAssertTrue(refused?.message.contains("Inference-Header-Content-Length '\(length)'") == true, "\(String(describing: refused))")
        }
        let wrongWidth = HTTPRequest(method: "POST", target: "/", body: v2Body("input", [1, 2, 3], shape: [1, 3]))
        let answer = try response { try routes.infer("digits", nil, wrongWidth, $0) }
        XCTAssertEqual(answer.status, 400)
        XCTAssertNotNil(try body(answer)["error"]?.stringValue)
        XCTAssertEqual(statusOf { try routes.infer("nothing", nil, wrongWidth) { _ in } }?.status, 404)
    }
}
