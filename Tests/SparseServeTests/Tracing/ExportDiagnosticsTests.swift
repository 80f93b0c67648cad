import Logging
import XCTest
@testable import SparseServe

final class ExportDiagnosticsTests: XCTestCase {
    func testLostSpansAreCounted() {
        let metrics = ServerMetrics()
        var logger = Logger(label: "otlp") { _ in ExportDiagnostics(metrics: metrics, forwardingTo: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }) }
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["queue_size": "64", "dropped_count": "17"])
        logger[metadataKey: "batch_size"] = "32"
        logger.warning("Failed to export batch.")
        logger.warning("Failed to export batch.")
        logger.info("Exported batch.")
        XCTAssertEqual(metrics.value(#"sparseserve_tracing_spans_dropped_total{reason="queue_full"}"#), 17)
        XCTAssertEqual(metrics.value(#"sparseserve_tracing_spans_dropped_total{reason="export_failed"}"#), 64)
    }

    func testWarningsCountEvenWhenTheLevelAskedForIsHigher() {
        let metrics = ServerMetrics()
        var logger = Logger(label: "otlp") { _ in ExportDiagnostics(metrics: metrics, forwardingTo: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }) }
        logger.logLevel = .error
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["dropped_count": "3"])
        XCTAssertEqual(metrics.value(#"sparseserve_tracing_spans_dropped_total{reason="queue_full"}"#), 3)
    }
}
