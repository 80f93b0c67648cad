import HTTPServer
import XCTest
@testable import SparseServe

final class RequestMetricsTests: XCTestCase {
    func testCountsByRouteLabelAndStatus() throws {
        let metrics = ServerMetrics()
        _ = try pass(RequestMetrics(metrics: metrics), request("POST", "/v2/models/m/infer"))
        _ = try pass(RequestMetrics(metrics: metrics), request("GET", "/nowhere"))
        XCTAssertEqual(metrics.httpRequests.value("infer", "200"), 1)
        XCTAssertEqual(metrics.httpRequests.value("other", "200"), 1)
        XCTAssertEqual(metrics.httpRequests.value("metadata", "200"), 0)
    }
}
