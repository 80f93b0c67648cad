import Foundation
import XCTest
@testable import SparseServe

/// The process_* readings from /proc and getrusage, and the CPU counter advancing only by new time.
final class ProcessSeriesTests: XCTestCase {
    func testReadingsFollowTheProcess() throws {
        #if os(Linux)
        let resident = ProcessSeries.residentBytes()
        XCTAssertGreaterThan(resident, Double(1 << 20), "a test process holds more than 1 MiB")
        XCTAssertLessThan(resident, 64 * Double(1 << 30))
        // 16 more descriptors show up, and go again (other tests' threads may move the count by a few).
        let before = ProcessSeries.openFileDescriptors()
        let handles = try (0..<16).map { _ in try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/statm")) }
        let during = ProcessSeries.openFileDescriptors()
        XCTAssertGreaterThanOrEqual(during - before, 14)
        for handle in handles { try handle.close() }
        XCTAssertLessThanOrEqual(ProcessSeries.openFileDescriptors(), during - 14)
        #endif
        let start = ProcessSeries.cpuSeconds()
        var x = 0.0
        let until = Date().addingTimeInterval(0.05)
        while Date() < until { x += sin(x) + 1 }
        XCTAssertGreaterThan(x, 0)
        XCTAssertGreaterThan(ProcessSeries.cpuSeconds(), start, "50 ms of work shows up as CPU time")
    }

    /// Scrapes raise the exported CPU counter to the process's CPU time, never past it, never down.
    func testCPUCounterTracksCPUTime() throws {
        let metrics = ServerMetrics()
        let first = try XCTUnwrap(metrics.value("process_cpu_seconds_total"))
        var x = 0.0
        let until = Date().addingTimeInterval(0.05)
        while Date() < until { x += cos(x) }
        let second = try XCTUnwrap(metrics.value("process_cpu_seconds_total"))
        XCTAssertGreaterThan(second, first)
        XCTAssertLessThanOrEqual(second, ProcessSeries.cpuSeconds() + 1e-6)
        XCTAssertGreaterThan(try XCTUnwrap(metrics.value("process_start_time_seconds")), 1.7e9)
    }
}
