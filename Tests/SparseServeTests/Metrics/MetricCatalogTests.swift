import Foundation
import XCTest
@testable import SparseServe

/// The metric table: every exported name has help text and is a valid Prometheus name with the
/// conventional suffix; histogram buckets are increasing and cover their range.
final class MetricCatalogTests: XCTestCase {
    private let names = [
        MetricCatalog.httpRequests, MetricCatalog.inferenceRequests, MetricCatalog.inferenceFailures, MetricCatalog.queueSeconds,
        MetricCatalog.computeSeconds, MetricCatalog.totalSeconds, MetricCatalog.inferenceRows, MetricCatalog.queueDepth,
        MetricCatalog.batchQueueDepth, MetricCatalog.batchRows, MetricCatalog.modelInfo, MetricCatalog.modelLoaded,
        MetricCatalog.modelLoadFailures, MetricCatalog.modelParameters, MetricCatalog.modelBytes, MetricCatalog.modelDensity,
        MetricCatalog.openConnections, MetricCatalog.configReloadFailures, MetricCatalog.spansDropped, MetricCatalog.buildInfo,
        MetricCatalog.processStart, MetricCatalog.processMemory, MetricCatalog.processFDs, MetricCatalog.processCPU,
    ]

    func testEveryNameHasHelpAndIsValid() {
        XCTAssertEqual(Set(names).count, names.count, "names are distinct")
        XCTAssertEqual(Set(MetricCatalog.help.keys), Set(names), "help for exactly the exported names")
        let valid = try! NSRegularExpression(pattern: "^[a-zA-Z_:][a-zA-Z0-9_:]*$")
        for name in names {
            XCTAssertNotNil(valid.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)), name)
            XCTAssertTrue(name.hasPrefix("sparseserve_") || name.hasPrefix("process_"), name)
            XCTAssertFalse(MetricCatalog.help[name]!.contains("\n"), "help is one line: \(name)")
        }
        for counter in [MetricCatalog.httpRequests, MetricCatalog.inferenceFailures, MetricCatalog.modelLoadFailures, MetricCatalog.processCPU] {
            XCTAssertTrue(counter.hasSuffix("_total"), counter)
        }
        XCTAssertTrue(MetricCatalog.totalSeconds.hasSuffix("_seconds"))
    }

    func testBuckets() throws {
        let latency = MetricCatalog.latencyBuckets
        XCTAssertEqual(latency.first, 5e-5)
        XCTAssertGreaterThan(try XCTUnwrap(latency.last), 60, "covers a minute")
        for (a, b) in zip(latency, latency.dropFirst()) {
            XCTAssertEqual(b / a, 1.5, accuracy: 1e-4, "geometric, factor 1.5")
        }
        XCTAssertEqual(MetricCatalog.buckets[MetricCatalog.queueSeconds], latency)
        XCTAssertEqual(MetricCatalog.buckets[MetricCatalog.batchRows], MetricCatalog.batchRowBuckets)
        XCTAssertEqual(MetricCatalog.batchRowBuckets, MetricCatalog.batchRowBuckets.sorted())
        XCTAssertNil(MetricCatalog.buckets[MetricCatalog.httpRequests], "counters have no buckets")
    }
}
