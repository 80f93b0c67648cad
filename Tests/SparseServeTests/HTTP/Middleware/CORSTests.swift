import HTTPServer
import XCTest
@testable import SparseServe

final class CORSTests: XCTestCase {
    let listed: CORS = {
        var config = CORSConfig()
        config.allowOrigins = ["https://a.example"]
        config.maxAgeSeconds = 60
        return CORS(config: config)
    }()

    func testAllowedOriginsGetHeadersOthersDoNot() throws {
        let allowed = try pass(listed, request("GET", "/v2", [("Origin", "https://a.example")])).passed
        XCTAssertEqual(allowed.headers["access-control-allow-origin"], "https://a.example")
        XCTAssertEqual(allowed.headers["vary"], "Origin")
        XCTAssertNotNil(allowed.headers["access-control-expose-headers"])
        XCTAssertNil(try pass(listed, request("GET", "/v2", [("Origin", "https://b.example")])).passed.headers["access-control-allow-origin"])
        XCTAssertNil(try pass(CORS(config: nil), request("GET", "/v2", [("Origin", "https://a.example")])).passed.headers["access-control-allow-origin"])
        let any = try pass(CORS(config: CORSConfig()), request("GET", "/v2", [("Origin", "https://z.example")])).passed
        XCTAssertEqual(any.headers["access-control-allow-origin"], "*")
        XCTAssertNil(any.headers["vary"])
    }

    func testPreflightIsAnsweredWithTheRoutesMethods() throws {
        let (answer, _) = try pass(listed, request("OPTIONS", "/v2/models/m/infer", [("Origin", "https://a.example"),
                                                                                    ("Access-Control-Request-Headers", "X-Custom")]))
        XCTAssertEqual(answer?.status, 204)
        XCTAssertEqual(answer?.headers["access-control-allow-methods"], "POST, OPTIONS")
        XCTAssertEqual(answer?.headers["access-control-allow-headers"], "X-Custom")
        XCTAssertEqual(answer?.headers["access-control-max-age"], "60")
        XCTAssertNil(try pass(listed, request("OPTIONS", "/nowhere", [("Origin", "https://a.example")])).answer, "no route: the router answers 404")
        XCTAssertNil(try pass(listed, request("OPTIONS", "/v2", [("Origin", "https://b.example")])).answer, "origin not allowed")
    }
}
