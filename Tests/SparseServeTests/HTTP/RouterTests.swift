import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// The router without sockets: every answer carries a request ID and is counted, unknown paths
/// are 404 naming the request, the middleware answers before any handler, and routes reach their
/// handlers (health, metadata, v2 inference, metrics, OpenAPI).
final class RouterTests: XCTestCase {
    private let key = "router-key-0123456789abcdef"

    private func answer(_ router: Router, _ method: String, _ target: String, key: String? = nil, body: [UInt8] = []) throws -> HTTPResponse {
        var headers = [("Host", "127.0.0.1")]
        if let key { headers.append(("Authorization", "Bearer \(key)")) }
        if !body.isEmpty { headers.append(("Content-Type", "application/json")) }
        let request = HTTPRequest(method: method, target: target, headers: HTTPHeaders(headers), body: body)
        return try response { router.handle(request, $0) }
    }

    func testRoutesReachTheirHandlers() throws {
        let service = try startedService(self, server: #", "apiKeys": ["\#(key)"]"#)
        let router = Router(service: service)
        XCTAssertEqual(try answer(router, "GET", "/v2/health/live").status, 200, "health is public")
        XCTAssertEqual(try body(try answer(router, "GET", "/v2/models/digits", key: key))["name"]?.stringValue, "digits")
        let inferred = try answer(router, "POST", "/v2/models/digits/infer", key: key, body: v2Body("input", [Float](repeating: 0, count: 64), shape: [1, 64]))
        XCTAssertEqual(inferred.status, 200, String(decoding: inferred.body, as: UTF8.self))
        XCTAssertEqual(try body(inferred)["model_name"]?.stringValue, "digits")
        let metrics = try answer(router, "GET", "/metrics")
        XCTAssertTrue(String(decoding: metrics.body, as: UTF8.self).contains("sparseserve_http_requests_total"))
        XCTAssertEqual(metrics.headers["Content-Type"], PrometheusExposition.contentType)
        XCTAssertTrue(String(decoding: try answer(router, "GET", "/openapi.yaml").body, as: UTF8.self).hasPrefix("openapi:"))
    }

    func testMiddlewareAnswersFirstAndEveryAnswerIsTagged() throws {
        let service = try startedService(self, server: #", "apiKeys": ["\#(key)"]"#)
        let router = Router(service: service)
        let unknown = try answer(router, "GET", "/v3/nothing", key: key)
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(try body(unknown)["error"]?.stringValue, "no route for GET /v3/nothing")
        let noKey = try answer(router, "GET", "/v2/models/digits")
        XCTAssertEqual(noKey.status, 401, "the key check answers before the handler")
        let wrongMethod = try answer(router, "GET", "/v2/models/digits/infer", key: key)
        XCTAssertEqual(wrongMethod.status, 405)
        XCTAssertEqual(wrongMethod.headers["Allow"], "POST")
        let badModel = try answer(router, "GET", "/v2/models/nope", key: key)
        XCTAssertEqual(badModel.status, 404)
        for response in [unknown, noKey, wrongMethod, badModel] {
            XCTAssertEqual(response.headers["X-Request-ID"]?.count, 32, "every answer carries a request ID")
        }
        XCTAssertEqual(service.metrics.value(#"sparseserve_http_requests_total{route="other",code="404"}"#), 1)
        XCTAssertEqual(service.metrics.value(#"sparseserve_http_requests_total{route="metadata",code="401"}"#), 1)
    }
}
