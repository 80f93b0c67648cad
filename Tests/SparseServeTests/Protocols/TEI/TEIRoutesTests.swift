import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// Which endpoint the TEI routes serve (compat.tei), and the routes on an endpoint that is not a
/// text encoder: health and info answer, inference is TEI's 424 backend error, an unloaded
/// model is 503. (test_tei_api.py runs the routes against MiniLM with TEI's clients.)
final class TEIRoutesTests: XCTestCase {
    private func service(compat: String) throws -> InferenceService {
        let text = #"{"server": {"host": "127.0.0.1", "port": 0, "threads": 2}, "compat": \#(compat), "endpoints": \#(identityAndDigits)}"#
        let service = InferenceService(config: try ServiceConfig.parse(Array(text.utf8), baseDirectory: packageRoot()), logger: silentLogger)
        try service.start()
        addTeardownBlock { service.drain() }
        try service.loadEndpoints()
        return service
    }

    func testServedEndpoint() throws {
        XCTAssertNil(TEIRoutes.endpointName(try service(compat: "{}")), "no text encoder loaded: no TEI routes")
        XCTAssertEqual(TEIRoutes.endpointName(try service(compat: #"{"tei": {"model": "digits"}}"#)), "digits")
        XCTAssertNil(TEIRoutes.endpointName(try service(compat: #"{"tei": {"model": "digits", "enabled": false}}"#)), "turned off")
    }

    func testRoutesOnAnEndpointThatIsNotATextEncoder() throws {
        let service = try service(compat: #"{"tei": {"model": "digits"}}"#)
        let routes = TEIRoutes(service: service)
        XCTAssertEqual(try response { routes.handle(.health, model: "digits", HTTPRequest(target: "/health"), $0) }.status, 200)
        let info = try body(try response { routes.handle(.info, model: "digits", HTTPRequest(target: "/info"), $0) })
        XCTAssertEqual(info["model_id"]?.stringValue, "digits")
        XCTAssertEqual(info["max_input_length"]?.integerValue, 0, "no tokenizer")
        XCTAssertEqual(info["max_batch_requests"]?.integerValue, 8, "digits batches up to 8")
        let embed = try response {
            routes.handle(.embed, model: "digits", HTTPRequest(method: "POST", target: "/embed", body: Array(#"{"inputs": "hi"}"#.utf8)), $0)
        }
        XCTAssertEqual(embed.status, 424)
        XCTAssertEqual(try body(embed)["error_type"]?.stringValue, "backend")
        let missing = try response { routes.handle(.info, model: "absent", HTTPRequest(target: "/info"), $0) }
        XCTAssertEqual(missing.status, 503)
        XCTAssertTrue(try body(missing)["error"]?.stringValue?.hasPrefix("model 'absent' is not loaded") ?? false)
    }
}
