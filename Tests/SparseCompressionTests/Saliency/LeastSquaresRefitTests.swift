import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// The masked refit: kept weights and bias moved toward the dense layer's outputs, never worse
/// than the start, pruned entries left at zero, the exact solution reached on a small problem,
/// and nothing done without the dense inputs.
final class LeastSquaresRefitTests: XCTestCase {
    private let rows = 6, features = 8, tokens = 64

    /// ‖X Wᵀ + b − X Ŵᵀ − b̂‖² over the calibration rows.
    private func outputError(_ x: [Float], _ w: [Float], _ b: [Float], _ w2: [Float], _ b2: [Float]) -> Double {
        var total = 0.0
        for t in 0..<tokens {
            for r in 0..<rows {
                var d = Double(b[r]) - Double(b2[r])
                for j in 0..<features { d += Double(x[t * features + j]) * Double(w[r * features + j] - w2[r * features + j]) }
                total += d * d
            }
        }
        return total
    }

    private func statistics(_ x: [Float], cross: Bool) throws -> InputStatistics {
        var s = InputStatistics(features: features, cross: cross)
        try x.withUnsafeBufferPointer { try s.add($0.baseAddress!, dense: cross ? $0.baseAddress! : nil, rows: tokens) }
        s.finish()
        return s
    }

    func testRefitImprovesTheOutputsAndKeepsTheMask() throws {
        var random = SeededRandom(seed: 81)
        // Correlated inputs (a shared factor plus noise, offset from 0): what a pruned weight did, its
        // kept neighbours and the bias can largely take over.
        let shared = random.array(tokens)
        let x = (0..<tokens * features).map { 0.5 + shared[$0 / features] + 0.3 * random.next() }
        let dense = random.array(rows * features), denseBias = random.array(rows)
        let mask = (0..<rows * features).map { UInt8(($0 * 7 + $0 / features) % 2) }  // half kept, varied per row
        var weights = zip(dense, mask).map { $1 != 0 ? $0 : 0 }, bias = denseBias
        let before = outputError(x, dense, denseBias, weights, bias)
        let iterations = try LeastSquaresRefit.refit(weights: &weights, bias: &bias, mask: mask, dense: dense, denseBias: denseBias,
                                                     rows: rows, statistics: try statistics(x, cross: true), ridge: 1e-6, iterations: 50)
        XCTAssertGreaterThan(iterations, 0)
        for i in weights.indices where mask[i] == 0 { XCTAssertEqual(weights[i], 0, "pruned weight \(i) stays pruned") }
        let after = outputError(x, dense, denseBias, weights, bias)
        XCTAssertLessThan(after, 0.7 * before, "refit moved the kept weights toward the dense outputs (\(before) → \(after))")
    }

    /// With every weight kept the optimum is the dense layer itself, reached from zero.
    func testFullMaskRecoversTheDenseLayer() throws {
        var random = SeededRandom(seed: 82)
        let x = random.array(tokens * features), dense = random.array(rows * features), denseBias = random.array(rows)
        var weights = [Float](repeating: 0, count: rows * features), bias = [Float](repeating: 0, count: rows)
        try LeastSquaresRefit.refit(weights: &weights, bias: &bias, mask: [UInt8](repeating: 1, count: rows * features), dense: dense,
                                    denseBias: denseBias, rows: rows, statistics: try statistics(x, cross: true), ridge: 1e-7, iterations: 60)
        for i in weights.indices { XCTAssertEqual(weights[i], dense[i], accuracy: 2e-3, "w[\(i)]") }
        for r in 0..<rows { XCTAssertEqual(bias[r], denseBias[r], accuracy: 2e-3, "b[\(r)]") }
    }

    func testWithoutDenseInputsNothingIsFitted() throws {
        var random = SeededRandom(seed: 83)
        let x = random.array(tokens * features), dense = random.array(rows * features)
        var weights = dense, bias = [Float](repeating: 0.5, count: rows)
        let iterations = try LeastSquaresRefit.refit(weights: &weights, bias: &bias, mask: [UInt8](repeating: 1, count: rows * features),
                                                     dense: dense, denseBias: nil, rows: rows, statistics: try statistics(x, cross: false))
        XCTAssertEqual(iterations, 0)
        XCTAssertEqual(weights, dense)
        XCTAssertEqual(bias, [Float](repeating: 0.5, count: rows))
    }

    func testRowDots() {
        XCTAssertEqual(LeastSquaresRefit.rowDots([1, 2, 3, 4], [5, 6, 7, 8], rows: 2, width: 2), [17, 53])
    }
}
