import Foundation
import XCTest
import SparseKernels

/// CSR operators: construction checks and the gather GEMV / weight-broadcast GEMM against a
/// float64 reference on every instruction set.
final class CSRWeightsTests: XCTestCase {
    func testMatchesReference() {
        var random = TestRandom(seed: 5)
        for (k, outputs, density) in [(7, 5, 0.5), (96, 33, 0.1), (64, 16, 1.0), (10, 4, 0.0), (130, 40, 0.3)] {
            let dense = random.array(outputs * k)
            let op = CSRWeights(magnitudePruning: dense, outputFeatures: outputs, inputFeatures: k, density: density, bias: random.array(outputs))
            XCTAssertEqual(op.values.count, Int((Double(outputs * k) * density).rounded()))
            OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 2, 3, 5, 17, 40, 70],
                                  random: &random, "csr k=\(k) n=\(outputs) density=\(density)")
        }
    }

    /// 6 rows over 37 inputs of very different lengths (empty, one non-zero, all 37), unsorted and
    /// repeated columns (shared with the int8 CSR tests).
    static let irregular: (rowStart: [Int32], columns: [Int32]) = {
        var columns: [Int32] = [5] + (0..<37).map(Int32.init) + [36, 0, 18] + [3, 3, 2, 1]
        columns.swapAt(10, 20)
        return ([0, 0, 1, 38, 41, 41, 45], columns)
    }()

    func testArraysKeepWhatTheTestAcceptsZerosIncluded() {
        // 2 × 3: [1, 0, 2; 0, 3, 0]; keep by a mask that accepts one zero and drops the 2.
        let weights: [Float] = [1, 0, 2, 0, 3, 0], mask = [true, true, false, false, true, false]
        let masked = CSRWeights.arrays(weights, outputFeatures: 2, inputFeatures: 3) { mask[$0] }
        XCTAssertEqual(masked.rowStart, [0, 2, 3])
        XCTAssertEqual(masked.columns, [0, 1, 1])
        XCTAssertEqual(masked.values, [1, 0, 3])
        let nonZero = CSRWeights(weights: weights, outputFeatures: 2, inputFeatures: 3)
        XCTAssertEqual(nonZero.rowStart, [0, 2, 3])
        XCTAssertEqual(nonZero.columns, [0, 2, 1])
        XCTAssertEqual(nonZero.values, [1, 2, 3])
        XCTAssertEqual(CSRWeights.arrays([], outputFeatures: 0, inputFeatures: 3) { _ in true }.rowStart, [0])
    }

    func testIrregularRows() throws {
        var random = TestRandom(seed: 6)
        let (k, outputs) = (37, 6)
        let (rowStart, columns) = Self.irregular
        let values = random.array(columns.count)
        let op = try CSRWeights(rowStart: rowStart, columns: columns, values: values, outputFeatures: outputs, inputFeatures: k)
        var dense = [Float](repeating: 0, count: outputs * k)
        for row in 0..<outputs {
            for e in Int(rowStart[row])..<Int(rowStart[row + 1]) { dense[row * k + Int(columns[e])] += values[e] }
        }
        XCTAssertEqual(op.denseWeights(), dense)
        OperatorChecker.check(op, dense: dense, bias: nil, rowCounts: [1, 2, 9, 33], random: &random, "irregular csr")
    }

    func testRejectsMalformedArrays() {
        XCTAssertThrowsError(try CSRWeights(rowStart: [0, 2, 1], columns: [0, 1], values: [1, 2], outputFeatures: 2, inputFeatures: 2))
        XCTAssertThrowsError(try CSRWeights(rowStart: [0, 1, 2], columns: [0, 2], values: [1, 2], outputFeatures: 2, inputFeatures: 2))
        XCTAssertThrowsError(try CSRWeights(rowStart: [0, 1], columns: [0], values: [1], outputFeatures: 2, inputFeatures: 2))
        XCTAssertThrowsError(try CSRWeights(rowStart: [0, 1, 2], columns: [0, 1], values: [1, 2], outputFeatures: 2, inputFeatures: 2, bias: [1]))
        let mask = [true, false, false, true]
        let op = CSRWeights(weights: [1, 2, 3, 4], mask: mask, outputFeatures: 2, inputFeatures: 2)
        XCTAssertEqual(op.values, [1, 4])
        XCTAssertEqual(op.storage, "csr")
        XCTAssertEqual(op.parameterCount, 2)
    }
}
