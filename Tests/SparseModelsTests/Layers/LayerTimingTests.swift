import Foundation
import SparseKernels
import XCTest
@testable import SparseModels

/// Layer timing on the real shape, and the dense stand-in chosen when it timed faster.
final class LayerTimingTests: XCTestCase {
    /// Counts its calls and the rows it was given, and takes a fixed time per call.
    private final class SlowOperator: LinearOperator, @unchecked Sendable {
        let inputFeatures = 8, outputFeatures = 4
        var storage: String { "slow" }
        var parameterCount: Int { 32 }
        var byteCount: Int { 128 }
        private(set) var rows: [Int] = []
        func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, activation: Activation, isa: InstructionSet) {
            self.rows.append(rows)
            usleep(2000)
        }
    }

    func testBestOfFiveAtOneRowPlusBestOfThreeAtThirtyTwo() {
        let op = SlowOperator()
        let microseconds = LayerTiming.microseconds(op)
        XCTAssertEqual(op.rows, [1, 1, 1, 1, 1, 32, 32, 32])
        XCTAssertGreaterThanOrEqual(microseconds, 4000, "two bests of at least 2 ms each")
        XCTAssertLessThan(microseconds, 2_000_000)
    }

    func testChosenDenseRunsTheDenseWeightsAndSaysWhy() {
        let weights: [Float] = [1, 2, 3, 4, 5, 6]
        let dense = DenseWeights(weights: weights, outputFeatures: 2, inputFeatures: 3, bias: [1, -1])
        let chosen = ChosenDense(dense, instead: "nm 2:4", sparseMicroseconds: 12.6, denseMicroseconds: 9.4)
        XCTAssertEqual(chosen.storage, "dense (nm 2:4 timed slower: 13 vs 9 µs)")
        XCTAssertEqual(chosen.inputFeatures, 3)
        XCTAssertEqual(chosen.outputFeatures, 2)
        XCTAssertEqual(chosen.parameterCount, 8)
        XCTAssertEqual(chosen.byteCount, dense.byteCount)
        let x = Matrix(rows: 2, columns: 3, values: [1, 0, -1, 2, 2, 2])
        XCTAssertEqual(chosen.apply(x, activation: .relu).values, dense.apply(x, activation: .relu).values)
        let expected: [Float] = [-1, -3, 13, 29]  // [1, 0, -1]·w + b and [2, 2, 2]·w + b
        XCTAssertEqual(chosen.apply(x).values, expected)
    }
}
