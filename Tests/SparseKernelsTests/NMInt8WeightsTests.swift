import CSparseKernels
import XCTest
@testable import SparseKernels

/// 2:4 int8 (dynamic activations): every level against the fp64 reference of the dequantised
/// pruned weight and quantized activations; the same int32 sums as the dense int8 kernel on the
/// same weights; extremes; refusal of over-full groups.
final class NMInt8WeightsTests: XCTestCase {
    func testEveryLevelMatchesDequantisedReference() throws {
        var random = TestRandom(seed: 101)
        for (k, n) in [(5, 3), (37, 17), (64, 33), (130, 47)] {
            let op = try NMInt8Weights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            let w = op.denseWeights()
            for g in 0..<(n * ((k + 3) / 4)) {
                let row = g / ((k + 3) / 4), c0 = (g % ((k + 3) / 4)) * 4
                XCTAssertLessThanOrEqual((c0..<min(k, c0 + 4)).filter { w[row * k + $0] != 0 }.count, 2)
            }
            for level in QuantizedInstructionSet.available {
                let pinned = PinnedLevel(op) { x, rows, ldx, y, ldy, act, pool in
                    op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: act, pool: pool, level: level)
                }
                OperatorChecker.checkTransformed(pinned, dense: w, bias: op.bias, rowCounts: [1, 2, 3, 9, 17, 33], random: &random,
                                                 transform: Int8DynamicWeightsTests.dequantizedRows, "2:4 int8 k=\(k) n=\(n) \(level)")
            }
        }
    }

    /// Same weights through the dense int8 kernel: identical outputs (same int32 sums), including
    /// -128 weights and a K tail.
    func testEqualsDenseInt8OnTheSameWeights() throws {
        let (k, n) = (1029, 40)
        var random = TestRandom(seed: 102)
        var values = [Int8](repeating: 0, count: n * k)
        for r in 0..<n { for c in 0..<k where (c + r) % 4 < 2 { values[r * k + c] = (r + c) % 5 == 0 ? -128 : Int8(c % 255 - 127) } }
        let scales = (0..<n).map { Float($0 + 1) / 64 }
        let sparse = try NMInt8Weights(values: values, scales: scales, outputFeatures: n, inputFeatures: k)
        let dense = try Int8DynamicWeights(values: values, scales: scales, outputFeatures: n, inputFeatures: k)
        for rows in [3, 17, 33] {  // row blocks of 1 to 8 rows, chunks of 16
            let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
            for isa in InstructionSet.available {
                XCTAssertEqual(sparse.apply(x, isa: isa).values, dense.apply(x, isa: isa).values, "rows=\(rows) \(isa)")
            }
        }
    }

    func testRefusesOverfullGroupsAndBadScales() {
        XCTAssertThrowsError(try NMInt8Weights(values: [1, 1, 1, 0], scales: [1], outputFeatures: 1, inputFeatures: 4))
        XCTAssertNoThrow(try NMInt8Weights(values: [1, 0, 1, 0], scales: [1], outputFeatures: 1, inputFeatures: 4))
        XCTAssertThrowsError(try NMInt8Weights(values: [1, 0, 1, 0], scales: [.nan], outputFeatures: 1, inputFeatures: 4))
    }
}
