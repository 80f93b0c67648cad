import XCTest
@testable import SparseKernels

/// Weight-only int8 CSR on every instruction set against the fp64 reference of the dequantised
/// weight: GEMV (1-2 rows) and GEMM paths (token tiles of 64 with tails), K tails, empty, long,
/// unsorted and repeated-column rows, -128 values; the same arrays as `CSRInt8Weights`.
final class CSRWeightOnlyInt8WeightsTests: XCTestCase {
    func testEveryLevelMatchesDequantisedReference() throws {
        var random = TestRandom(seed: 181)
        for (k, n, density) in [(5, 3, 0.6), (37, 17, 0.3), (130, 47, 0.1), (64, 16, 1.0), (10, 4, 0.0)] {
            let source = CSRWeights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, density: density,
                                    bias: random.array(n))
            let op = try CSRWeightOnlyInt8Weights(source)
            let w8a8 = try CSRInt8Weights(source)
            XCTAssertEqual(op.stored.values, w8a8.values)
            XCTAssertEqual(op.stored.scales, w8a8.scales)
            OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 2, 3, 9, 17, 33, 70, 130], random: &random,
                                  "csr int8 weight-only k=\(k) n=\(n) density=\(density)")
        }
    }

    /// Rows of very different lengths (empty, one, all 37 and more), unsorted and repeated columns, -128.
    func testIrregularRows() throws {
        var random = TestRandom(seed: 182)
        let (rowStart, columns) = CSRWeightsTests.irregular
        let values: [Int8] = (0..<columns.count).map { (i: Int) -> Int8 in Int8(truncatingIfNeeded: (i * 37) % 256 - 128) }
        let op = try CSRWeightOnlyInt8Weights(rowStart: rowStart, columns: columns, values: values, scales: [0.5, 0.25, 1, 2, 1, 0.125],
                                              outputFeatures: 6, inputFeatures: 37, bias: random.array(6))
        XCTAssertTrue(values.contains(-128))
        OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 2, 3, 9, 33, 65], random: &random,
                              "irregular csr int8 weight-only")
    }

    func testSplitAcrossPoolMatchesSerialAndBadArraysAreRefused() throws {
        var random = TestRandom(seed: 183)
        let source = CSRWeights(magnitudePruning: random.array(100 * 64), outputFeatures: 100, inputFeatures: 64, density: 0.3)
        let op = try CSRWeightOnlyInt8Weights(source)
        let x = Matrix(rows: 20, columns: 64, values: random.array(20 * 64))
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        XCTAssertEqual(op.apply(x, activation: .relu, pool: pool).values, op.apply(x, activation: .relu).values)
        XCTAssertThrowsError(try CSRWeightOnlyInt8Weights(rowStart: [0, 1], columns: [0], values: [1], scales: [.nan], outputFeatures: 1,
                                                          inputFeatures: 2))
        XCTAssertThrowsError(try CSRWeightOnlyInt8Weights(rowStart: [0, 1], columns: [2], values: [1], scales: [1], outputFeatures: 1,
                                                          inputFeatures: 2))
    }
}
