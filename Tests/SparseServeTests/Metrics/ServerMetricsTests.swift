import CoreMetrics
import XCTest
@testable import SparseServe

final class ServerMetricsTests: XCTestCase {
    func testEveryFamilyHasHelpAndAType() {
        let metrics = ServerMetrics()
        metrics.countHTTP(.infer, status: 200)
        metrics.publishModel("m", facts())
        metrics.series("m").record(rows: 2, queue: 0.001, compute: 0.002, total: 0.004, failure: nil)
        metrics.countLoadFailure("m")
        metrics.countDroppedSpans(3, reason: .queueFull)
        metrics.sample(MetricCatalog.queueDepth) { 5 }
        metrics.sample(MetricCatalog.openConnections) { 2 }
        let lines = metrics.text.split(separator: "\n")
        let types = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        let helps = lines.filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] }
        XCTAssertEqual(types, helps, "a HELP line right before each TYPE line")
        for name in types { XCTAssertNotNil(MetricCatalog.help[String(name)], "\(name) has no help text in the catalog") }
        for name in MetricCatalog.help.keys {
            XCTAssertTrue(types.contains(Substring(name)), "\(name) is not exported")
        }
        XCTAssertEqual(metrics.value(#"sparseserve_queue_depth"#), 5)
        XCTAssertEqual(metrics.value(#"sparseserve_tracing_spans_dropped_total{reason="queue_full"}"#), 3)
        XCTAssertEqual(metrics.value(#"sparseserve_tracing_spans_dropped_total{reason="export_failed"}"#), 0)
    }

    func testModelSeriesStartAtZeroAndCountRequests() {
        let metrics = ServerMetrics()
        metrics.publishModel("m", facts())
        XCTAssertEqual(metrics.value(#"sparseserve_inference_requests_total{model="m",outcome="success"}"#), 0)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_failures_total{model="m",reason="timeout"}"#), 0)
        metrics.series("m").record(rows: 3, queue: 0.5, compute: 0.25, total: 1, failure: nil)
        metrics.series("m").record(rows: 1, queue: 0.1, compute: 0, total: 0.1, failure: .invalidInput)
        metrics.countRejected("m", .rejected)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_requests_total{model="m",outcome="success"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_requests_total{model="m",outcome="failure"}"#), 2)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_failures_total{model="m",reason="invalid_input"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_rows_total{model="m"}"#), 3)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_queue_seconds_count{model="m"}"#), 2)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_request_duration_seconds_bucket{model="m",le="5e-05"}"#), 0)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_request_duration_seconds_bucket{model="m",le="+Inf"}"#), 2)
        XCTAssertEqual(metrics.value(#"sparseserve_model_info{model="m",version="1",architecture="mlp",compression="nm"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_model_density{model="m"}"#), 0.5)
        XCTAssertEqual(metrics.value(#"sparseserve_batch_queue_depth{model="m"}"#), 7)
        let totals = metrics.statistics("m")
        XCTAssertEqual([totals.successes, totals.failures, totals.rows, totals.timed], [1, 2, 3, 2])
        XCTAssertEqual(totals.queueSeconds, 0.6, accuracy: 1e-12)
    }

    func testRemovingAModelRemovesEverySeriesLabelledWithIt() {
        let metrics = ServerMetrics()
        for model in ["gone", "kept", "slot"] {
            metrics.publishModel(model, facts())
            metrics.series(model).record(rows: 1, queue: 0.1, compute: 0.1, total: 0.2, failure: nil)
            metrics.recordBatch(4, model: model)
            metrics.countLoadFailure(model)
        }
        metrics.removeModel("gone", keepLoadedAtZero: false)
        metrics.removeModel("slot", keepLoadedAtZero: true)
        let text = metrics.text
        XCTAssertFalse(text.contains(#"model="gone""#))
        XCTAssertTrue(text.contains(#"sparseserve_batch_rows_count{model="kept"} 1"#))
        XCTAssertEqual(text.components(separatedBy: #"model="slot""#).count - 1, 1, "only model_loaded 0 stays")
        XCTAssertEqual(metrics.value(#"sparseserve_model_loaded{model="slot"}"#), 0)
        // a reload republishes: the info line follows the new facts
        var other = facts()
        other.compression = "blast"
        metrics.publishModel("kept", other)
        XCTAssertNil(metrics.value(#"sparseserve_model_info{model="kept",version="1",architecture="mlp",compression="nm"}"#))
        XCTAssertEqual(metrics.value(#"sparseserve_model_info{model="kept",version="1",architecture="mlp",compression="blast"}"#), 1)
    }

    func testLatencyBucketsAscend() {
        let b = MetricCatalog.latencyBuckets
        XCTAssertEqual(b.first, 5e-5)
        XCTAssertTrue(zip(b, b.dropFirst()).allSatisfy { $0 < $1 })
        XCTAssertGreaterThan(b.last!, 10)
    }

    func testProcessMetricsAreRead() {
        let metrics = ServerMetrics()
        XCTAssertGreaterThan(metrics.value("process_resident_memory_bytes") ?? 0, 1e6)
        XCTAssertGreaterThan(metrics.value("process_open_fds") ?? 0, 0)
        XCTAssertEqual(metrics.value(#"sparseserve_build_info{version="\#(InferenceService.version)"}"#), 1)
    }

    func testMetricsOfEmbeddingCodeShareThePage() {
        let metrics = ServerMetrics()
        Counter(label: "embedder_jobs_total", factory: metrics.factory).increment(by: 2)
        XCTAssertEqual(metrics.value("embedder_jobs_total"), 2)
        XCTAssertTrue(metrics.text.contains("# HELP embedder_jobs_total \(MetricCatalog.foreignHelp)\n# TYPE embedder_jobs_total counter\n"))
    }

    private func facts() -> ModelFacts {
        ModelFacts(version: "1", architecture: "mlp", compression: "nm", parameters: 10, bytes: 40, density: 0.5, queuedCount: { 7 })
    }
}
