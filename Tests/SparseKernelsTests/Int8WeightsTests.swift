import CSparseKernels
import XCTest
@testable import SparseKernels

/// Weight-only int8 (per-channel and group scales, fp32 activations) on every instruction set
/// against an fp64 reference of the dequantised weight, with odd shapes and tails.
final class Int8WeightsTests: XCTestCase {
    func testChannelAndGroupScalesMatchDequantisedReference() throws {
        var random = TestRandom(seed: 81)
        for granularity in [Int8Granularity.channel, .group(64), .group(5)] {
            for (k, n) in [(5, 3), (37, 17), (64, 33), (130, 47), (200, 20)] {
                let op = try Int8Weights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k,
                                         granularity: granularity, bias: random.array(n))
                XCTAssertEqual(op.scales.count, n * granularity.scalesPerRow(inputFeatures: k))
                OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 2, 3, 9, 17, 40],
                                      random: &random, "\(op.storage) k=\(k) n=\(n)")
            }
        }
    }

    func testQuantizationErrorIsAtMostHalfAStep() throws {
        var random = TestRandom(seed: 82)
        let (k, n) = (150, 7)
        let w = random.array(n * k)
        for granularity in [Int8Granularity.channel, .group(64)] {
            let op = try Int8Weights(weights: w, outputFeatures: n, inputFeatures: k, granularity: granularity)
            let deq = op.denseWeights(), perRow = granularity.scalesPerRow(inputFeatures: k)
            for i in w.indices {
                let scale = op.scales[(i / k) * perRow + (perRow == 1 ? 0 : (i % k) / 64)]
                XCTAssertLessThanOrEqual(abs(deq[i] - w[i]), scale * 0.5001, "\(granularity) weight \(i)")
            }
            XCTAssertEqual(op.values.map { abs(Int($0)) }.max(), 127)
        }
    }

    func testSplitAcrossPoolMatchesSerial() throws {
        var random = TestRandom(seed: 83)
        let (k, n, rows) = (128, 100, 20)
        let op = try Int8Weights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, granularity: .group(64))
        let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        XCTAssertEqual(op.apply(x, activation: .relu, pool: pool).values, op.apply(x, activation: .relu).values)
    }

    func testRefusesBadStoredTensors() {
        let values = [Int8](repeating: 1, count: 6)
        XCTAssertThrowsError(try Int8Weights(values: values, scales: [1, 0], outputFeatures: 2, inputFeatures: 3, granularity: .channel))
        XCTAssertThrowsError(try Int8Weights(values: values, scales: [1, .nan], outputFeatures: 2, inputFeatures: 3, granularity: .channel))
        // group 2 over 3 inputs: 2 scales per row
        XCTAssertThrowsError(try Int8Weights(values: values, scales: [1, 1], outputFeatures: 2, inputFeatures: 3, granularity: .group(2)))
        XCTAssertNoThrow(try Int8Weights(values: values, scales: [1, 1, 1, 1], outputFeatures: 2, inputFeatures: 3, granularity: .group(2)))
        XCTAssertThrowsError(try Int8Weights(values: values, scales: [1, 1], outputFeatures: 2, inputFeatures: 3, granularity: .group(0))) { error in
            XCTAssertEqual(error as? QuantizationError, .invalidGroup(0))
        }
    }
}
