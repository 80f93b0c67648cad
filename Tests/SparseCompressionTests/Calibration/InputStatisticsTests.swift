import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Calibration input statistics against float64 sums of float products (what the kernel accumulates): H = Σ x xᵀ (mirrored by `finish`), the
/// cross term against the dense model's inputs, column sums, token counts over several `add`
/// calls, the same on one thread and split across the pool, and the augmented (bias) forms.
final class InputStatisticsTests: XCTestCase {
    private let features = 7

    private func reference(_ a: [Float], _ b: [Float], rows: Int) -> [Double] {
        var out = [Double](repeating: 0, count: features * features)
        for t in 0..<rows { for i in 0..<features { for j in 0..<features {
            out[i * features + j] += Double(a[t * features + i] * b[t * features + j])
        } } }
        return out
    }

    func testGramCrossAndSumsAgainstFloat64() throws {
        var random = SeededRandom(seed: 71)
        let (first, second) = (5, 9)
        let x = random.array((first + second) * features), dense = random.array((first + second) * features)
        for pool in [KernelPool(threads: 1), KernelPool(threads: 2, minimumSplitSeconds: 0)] {
            var s = InputStatistics(features: features, cross: true)
            try x.withUnsafeBufferPointer { xs in
                try dense.withUnsafeBufferPointer { ds in
                    try s.add(xs.baseAddress!, dense: ds.baseAddress!, rows: first, pool: pool)
                    try s.add(xs.baseAddress! + first * features, dense: ds.baseAddress! + first * features, rows: second, pool: pool)
                }
            }
            s.finish()
            let rows = first + second
            XCTAssertEqual(s.tokens, rows)
            let h = reference(x, x, rows: rows), c = reference(x, dense, rows: rows)
            for i in h.indices { XCTAssertEqual(s.gram[i], h[i], accuracy: 1e-6, "H[\(i)] threads \(pool.threadCount)") }
            let cross = try XCTUnwrap(s.cross)
            for i in c.indices { XCTAssertEqual(cross[i], c[i], accuracy: 1e-6, "C[\(i)]") }
            for j in 0..<features {
                XCTAssertEqual(s.sums[j], (0..<rows).reduce(0.0) { $0 + Double(x[$1 * features + j]) }, accuracy: 1e-9)
                XCTAssertEqual(s.denseSums![j], (0..<rows).reduce(0.0) { $0 + Double(dense[$1 * features + j]) }, accuracy: 1e-9)
            }
        }
    }

    func testAugmentedFormsAppendTheBiasInput() throws {
        var random = SeededRandom(seed: 72)
        let rows = 4, x = random.array(rows * features)
        var s = InputStatistics(features: features, cross: false)
        try x.withUnsafeBufferPointer { try s.add($0.baseAddress!, dense: nil, rows: rows) }
        s.finish()
        XCTAssertNil(s.cross)
        XCTAssertNil(s.augmentedCross, "no dense inputs tracked: no refit targets")
        let a = features + 1, g = s.augmentedGram
        XCTAssertEqual(g.count, a * a)
        for i in 0..<features {
            for j in 0..<features { XCTAssertEqual(g[i * a + j], s.gram[i * features + j]) }
            XCTAssertEqual(g[i * a + features], s.sums[i], "column of Σx")
            XCTAssertEqual(g[features * a + i], s.sums[i], "row of Σx")
        }
        XCTAssertEqual(g[a * a - 1], Double(rows), "the bias input's own sum: the token count")
        XCTAssertEqual(InputStatistics.augment([1, 2, 3, 4], [5, 6], [7, 8], 9, 2), [1, 2, 5, 3, 4, 6, 7, 8, 9])
    }
}
