import XCTest
@testable import SparseServe

final class PrometheusExpositionTests: XCTestCase {
    func testHelpLinesGoBeforeTypeLines() {
        let text = "# TYPE sparseserve_queue_depth gauge\nsparseserve_queue_depth 1.0\n# TYPE x_total counter\nx_total 2\n"
        let out = String(decoding: PrometheusExposition.withHelp(Array(text.utf8)), as: UTF8.self)
        XCTAssertEqual(out, """
            # HELP sparseserve_queue_depth \(MetricCatalog.help["sparseserve_queue_depth"]!)
            # TYPE sparseserve_queue_depth gauge
            sparseserve_queue_depth 1.0
            # HELP x_total \(MetricCatalog.foreignHelp)
            # TYPE x_total counter
            x_total 2

            """)
    }

    func testHelpIsEscaped() {
        XCTAssertEqual(String(decoding: PrometheusExposition.escaped("a\\b\nc \"q\""), as: UTF8.self), #"a\\b\nc "q""#)
    }

    func testEmptyTextStaysEmpty() {
        XCTAssertEqual(PrometheusExposition.withHelp([]), [])
    }
}
