import Foundation
import XCTest
@testable import SparseServe

/// One model's handles on their own: totals kept for the statistics extension (also under
/// concurrent requests), refusals counted without timings, the queue depth read at scrape time,
/// and every series gone after `destroy`.
final class ModelSeriesTests: XCTestCase {
    private func facts(queued: (@Sendable () -> Int)? = nil) -> ModelFacts {
        ModelFacts(version: "2", architecture: "mlp", compression: "csr", parameters: 10, bytes: 40, density: 0.25, queuedCount: queued)
    }

    func testTotalsFollowEveryRecord() {
        let metrics = ServerMetrics()
        let series = ModelSeries(name: "m", factory: metrics.factory)
        XCTAssertEqual(series.snapshot, InferenceTotals())
        series.record(rows: 4, queue: 0.5, compute: 0.25, total: 1, failure: nil)
        series.record(rows: 9, queue: 0.25, compute: 0, total: 0.5, failure: .timeout)
        series.countFailure(.rejected)
        let totals = series.snapshot
        XCTAssertEqual([totals.successes, totals.failures, totals.rows, totals.timed], [1, 2, 4, 2],
                       "a failed request's rows do not count; a refusal has no timing")
        XCTAssertEqual(totals.queueSeconds, 0.75)
        XCTAssertEqual(totals.totalSeconds, 1.5)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_failures_total{model="m",reason="rejected"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_failures_total{model="m",reason="timeout"}"#), 1)
        XCTAssertEqual(metrics.value(#"sparseserve_inference_failures_total{model="m",reason="cancelled"}"#), 0, "every reason exists at 0")
    }

    func testConcurrentRecordsAreAllCounted() {
        let series = ModelSeries(name: "busy", factory: ServerMetrics().factory)
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            series.record(rows: 2, queue: 0, compute: 0, total: 0.001, failure: i % 4 == 0 ? .internal : nil)
        }
        let totals = series.snapshot
        XCTAssertEqual(totals.successes, 300)
        XCTAssertEqual(totals.failures, 100)
        XCTAssertEqual(totals.rows, 600)
        XCTAssertEqual(totals.timed, 400)
    }

    func testQueueDepthIsReadAtScrapeTime() {
        let metrics = ServerMetrics()
        let series = ModelSeries(name: "q", factory: metrics.factory)
        let depth = Counter()
        series.publish(facts(queued: { depth.value }))
        XCTAssertNotNil(series.batchRows, "a batched model gets the batch-size histogram")
        depth.set(5)
        series.refresh()
        XCTAssertEqual(metrics.value(#"sparseserve_batch_queue_depth{model="q"}"#), 5)
        series.publish(facts())
        XCTAssertNil(series.batchRows, "republished without a batcher")
        series.refresh()
        XCTAssertEqual(metrics.value(#"sparseserve_batch_queue_depth{model="q"}"#), 0)
        XCTAssertEqual(metrics.value(#"sparseserve_model_info{model="q",version="2",architecture="mlp",compression="csr"}"#), 1)
    }

    func testDestroyRemovesEverySeries() {
        let metrics = ServerMetrics()
        let series = ModelSeries(name: "gone", factory: metrics.factory)
        series.publish(facts(queued: { 1 }))
        series.record(rows: 1, queue: 0, compute: 0, total: 0, failure: nil)
        XCTAssertTrue(metrics.text.contains(#"model="gone""#))
        series.destroy()
        XCTAssertFalse(metrics.text.contains(#"model="gone""#))
        series.refresh()  // after destroy: nothing to read, nothing recreated
        XCTAssertFalse(metrics.text.contains(#"model="gone""#))
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var current = 0
        var value: Int { lock.lock(); defer { lock.unlock() }; return current }
        func set(_ v: Int) { lock.lock(); current = v; lock.unlock() }
    }
}
