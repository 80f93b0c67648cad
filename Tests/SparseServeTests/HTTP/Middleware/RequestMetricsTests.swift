import HTTPServer
import XCTest
@testable import SparseServe

final class RequestMetricsTests: XCTestCase {
    func testCountsByRouteLabelAndStatus() throws {
        let metrics = ServerMetrics()
        _ = try pass(RequestMetrics(metrics: metrics), request("POST", "/v2/models/m/infer"))
        _ = try pass(RequestMetrics(metrics: metrics), request("GET", "/nowhere"))
        XCTAssertEqual(metrics.value(#"sparseserve_http_requests_total{route="infer",code="200"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_http_requests_total{route="other",code="200"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_http_requests_total{route="metadata",code="200"}"#), 0, "exists at 0 before traffic")
    }
}
