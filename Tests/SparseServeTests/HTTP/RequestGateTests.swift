import HTTPServer
import XCTest
@testable import SparseServe

/// The decision taken from a request's head before any body byte is read: Host allowlist (421),
/// foreign Origin (403), admin routes (403 / 415 / 401), keys per route (401 with
/// WWW-Authenticate, in the route's error shape), public routes, and the body limit per route.
final class RequestGateTests: XCTestCase {
    private let serverKey = "server-key-0123456789abcdef", endpointKey = "endpoint-key-0123456789abcdef"

    private func gate(_ server: String = "") throws -> RequestGate {
        let endpoints = #"[{"name": "identity", "model": "Tests/fixtures/models/identity", "maxBodyBytes": 5000, "apiKeys": ["\#(endpointKey)"]},"#
            + #"{"name": "other", "model": "Tests/fixtures/models/identity"}]"#
        let service = try startedService(self, endpoints: endpoints, server: #", "maxBodyBytes": 9000, "apiKeys": ["\#(serverKey)"]"# + server)
        return RequestGate(service: service)
    }

    private func head(_ method: String = "GET", _ path: String, key: String? = nil, _ headers: [(String, String)] = []) -> HTTPRequest {
        var all = [("Host", "127.0.0.1:8000")] + headers
        if let key { all.append(("Authorization", "Bearer \(key)")) }
        return HTTPRequest(method: method, target: path, headers: HTTPHeaders(all))
    }

    private func limit(_ decision: HTTPHeadDecision) -> Int? {
        if case .accept(let bytes) = decision { return bytes }
        return nil
    }

    private func refusal(_ decision: HTTPHeadDecision) -> HTTPResponse? {
        if case .reject(let response) = decision { return response }
        return nil
    }

    func testKeysPerRouteAndBodyLimits() throws {
        let gate = try gate()
        XCTAssertEqual(limit(gate.decide(head("POST", "/v2/models/identity/infer", key: endpointKey))), 5000, "the endpoint's own limit")
        XCTAssertEqual(limit(gate.decide(head("POST", "/v2/models/identity/infer", key: serverKey))), 5000, "server keys open every route")
        XCTAssertEqual(limit(gate.decide(head("POST", "/v2/models/other/infer", key: serverKey))), 9000, "the server's limit")
        XCTAssertEqual(limit(gate.decide(head("GET", "/v2/models/identity", key: serverKey))), RequestGate.smallBodyBytes)
        let wrongEndpoint = refusal(gate.decide(head("POST", "/v2/models/other/infer", key: endpointKey)))
        XCTAssertEqual(wrongEndpoint?.status, 401, "an endpoint's key opens only that endpoint")
        XCTAssertEqual(wrongEndpoint?.headers["WWW-Authenticate"], RequestGate.bearer)
        XCTAssertNotNil(wrongEndpoint?.headers["X-Request-ID"])
        XCTAssertEqual(refusal(gate.decide(head("POST", "/v2/models/identity/infer")))?.status, 401)
        XCTAssertEqual(refusal(gate.decide(head("POST", "/v2/models/identity/infer", key: endpointKey + "x")))?.status, 401)
        XCTAssertEqual(limit(gate.decide(head("GET", "/v2/health/live"))), RequestGate.smallBodyBytes, "public by default")
        XCTAssertEqual(limit(gate.decide(head("GET", "/metrics"))), RequestGate.smallBodyBytes)
        XCTAssertEqual(limit(gate.decide(head("GET", "/no/such/route"))), RequestGate.smallBodyBytes, "the router answers 404")
        XCTAssertEqual(limit(gate.decide(head("OPTIONS", "/v2/models/identity/infer"))), 0, "preflight: no key, no body")
    }

    /// `/v1/embeddings` names its model in the body: any key of the server or an endpoint passes the
    /// head, the limit is the largest endpoint's, and a refusal is in OpenAI's error shape.
    func testEmbeddingsRouteBeforeTheBodyIsRead() throws {
        let gate = try gate()
        XCTAssertEqual(limit(gate.decide(head("POST", "/v1/embeddings", key: endpointKey))), 9000, "max(5000, the server's 9000)")
        let refused = try XCTUnwrap(refusal(gate.decide(head("POST", "/v1/embeddings"))))
        XCTAssertEqual(refused.status, 401)
        XCTAssertNotNil(try body(refused)["error"]?["message"], "OpenAI's {\"error\": {\"message\"}} shape")
    }

    func testHostAndOriginChecks() throws {
        let gate = try gate(#", "cors": {"allowOrigins": ["https://app.example"]}"#)
        let rebinding = refusal(gate.decide(HTTPRequest(target: "/v2/health/live", headers: HTTPHeaders([("Host", "evil.example:8000")]))))
        XCTAssertEqual(rebinding?.status, 421, "a loopback bind answers loopback names only")
        XCTAssertTrue(String(decoding: rebinding?.body ?? [], as: UTF8.self).contains("evil.example"))
        XCTAssertEqual(limit(gate.decide(HTTPRequest(target: "/v2/health/live", headers: HTTPHeaders([("Host", "[::1]:8000")])))), RequestGate.smallBodyBytes)
        XCTAssertEqual(limit(gate.decide(HTTPRequest(target: "/v2/health/live", headers: HTTPHeaders([("Host", "LOCALHOST")])))), RequestGate.smallBodyBytes)
        XCTAssertEqual(refusal(gate.decide(head("GET", "/v2/health/live", [("Origin", "https://other.example")])))?.status, 403)
        XCTAssertNotNil(limit(gate.decide(head("GET", "/v2/health/live", [("Origin", "https://app.example")]))), "allowed by server.cors")
        XCTAssertNotNil(limit(gate.decide(head("GET", "/v2/health/live", [("Origin", "http://127.0.0.1:8000")]))), "the server's own origin")
        XCTAssertEqual(refusal(gate.decide(head("GET", "/v2/health/live", [("Origin", "http://127.0.0.1:9999")])))?.status, 403, "another port is another origin")
    }

    func testAdminRoutesAreOffByDefault() throws {
        let gate = try gate()
        let off = refusal(gate.decide(head("POST", "/v2/repository/models/identity/load", key: serverKey, [("Content-Type", "application/json")])))
        XCTAssertEqual(off?.status, 403, "even the server key cannot load while the admin API is off")
    }

    func testHostNames() {
        XCTAssertEqual(RequestGate.hostName("Example.COM:8000"), "example.com")
        XCTAssertEqual(RequestGate.hostName("[::1]:8000"), "::1")
        XCTAssertEqual(RequestGate.hostName("[::1]"), "::1")
        XCTAssertEqual(RequestGate.hostName("::1"), "::1", "a bare IPv6 literal keeps its colons")
        XCTAssertEqual(RequestGate.hostName("localhost"), "localhost")
    }
}
