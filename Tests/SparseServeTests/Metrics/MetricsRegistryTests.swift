import XCTest
@testable import SparseServe

final class MetricsRegistryTests: XCTestCase {
    func testRendersPrometheusTextFormat() {
        let registry = MetricsRegistry()
        let c = registry.family("t_requests_total", "Requests with \"quotes\" and \\ slash.", .counter, labels: ["code"])
        c.add(1, "200")
        c.add(2, "200")
        c.add(1, "a\"b\nc")
        let h = registry.family("t_seconds", "Latency.", .histogram, labels: ["m"], buckets: [0.1, 1])
        h.observe(0.05, "x")
        h.observe(0.5, "x")
        h.observe(5, "x")
        let g = registry.family("t_depth", "Depth.", .gauge)
        g.collect { 7 }
        let text = registry.render()
        XCTAssertTrue(text.contains("# TYPE t_requests_total counter\n"))
        XCTAssertTrue(text.contains("t_requests_total{code=\"200\"} 3\n"))
        XCTAssertTrue(text.contains("t_requests_total{code=\"a\\\"b\\nc\"} 1\n"))
        XCTAssertTrue(text.contains("# HELP t_requests_total Requests with \"quotes\" and \\\\ slash.\n"))
        XCTAssertTrue(text.contains("t_seconds_bucket{m=\"x\",le=\"0.1\"} 1\n"))
        XCTAssertTrue(text.contains("t_seconds_bucket{m=\"x\",le=\"1\"} 2\n"))
        XCTAssertTrue(text.contains("t_seconds_bucket{m=\"x\",le=\"+Inf\"} 3\n"))
        XCTAssertTrue(text.contains("t_seconds_sum{m=\"x\"} 5.55\n"))
        XCTAssertTrue(text.contains("t_seconds_count{m=\"x\"} 3\n"))
        XCTAssertTrue(text.contains("t_depth 7\n"))
        XCTAssertEqual(c.value("200"), 3)
        XCTAssertEqual(h.histogramTotals("x").count, 3)
    }

    func testLatencyBucketsAscend() {
        let b = MetricsRegistry.latencyBuckets
        XCTAssertEqual(b.first, 5e-5)
        XCTAssertTrue(zip(b, b.dropFirst()).allSatisfy { $0 < $1 })
        XCTAssertGreaterThan(b.last!, 10)
    }
}
