import CSparseKernels
import XCTest

/// The benchmarks' STREAM-like read kernel really reads (sums) every value, tails included.
final class BandwidthTests: XCTestCase {
    func testReadSumAddsEveryValue() {
        for count in [0, 1, 7, 63, 64, 127, 128, 129, 1000] {
            let values = (0..<count).map { Float($0 % 5) }
            XCTAssertEqual(ss_read_sum(values, count), values.reduce(0, +), "\(count) values")
        }
    }
}
