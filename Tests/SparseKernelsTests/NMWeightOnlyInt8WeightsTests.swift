import XCTest
@testable import SparseKernels

/// Weight-only int8 N:M (per-row and group scales, fp32 activations) on every instruction set
/// against the fp64 reference of the dequantised weight, with odd shapes, K tails and batches
/// that cover the 8/4/2/1-row blocks and several 32-row batches; refusals of bad groups, scales
/// and values.
final class NMWeightOnlyInt8WeightsTests: XCTestCase {
    func testEveryPatternAndGranularityMatchesDequantisedReference() throws {
        var random = TestRandom(seed: 171)
        for (n, m) in [(2, 4), (1, 4), (3, 4), (4, 8), (2, 8), (8, 16)] {
            for granularity in [Int8Granularity.channel, .group(64), .group(16)] {
                for (k, outputs) in [(5, 3), (37, 17), (130, 40)] {
                    let source = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k,
                                               n: n, m: m, bias: random.array(outputs))
                    let op = try NMWeightOnlyInt8Weights(source, granularity: granularity)
                    let w = op.denseWeights()
                    XCTAssertEqual(zip(w, source.denseWeights()).filter { $0 != 0 && $1 == 0 }.count, 0, "no weight outside the mask")
                    XCTAssertEqual(op.scales.count, outputs * granularity.scalesPerRow(inputFeatures: k))
                    OperatorChecker.check(op, dense: w, bias: op.bias, rowCounts: [1, 2, 3, 7, 15, 40], random: &random,
                                          "\(op.storage) k=\(k) n=\(outputs)")
                }
            }
        }
    }

    /// Quantization keeps every kept weight within half a step of its fp32 value.
    func testDequantisedWeightsStayWithinHalfAStep() throws {
        var random = TestRandom(seed: 172)
        let (k, outputs) = (200, 24)
        let source = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k, n: 2, m: 4)
        for granularity in [Int8Granularity.channel, .group(64)] {
            let op = try NMWeightOnlyInt8Weights(source, granularity: granularity)
            let perRow = granularity.scalesPerRow(inputFeatures: k), fp32 = source.denseWeights(), deq = op.denseWeights()
            for i in fp32.indices {
                let scale = op.scales[(i / k) * perRow + (perRow == 1 ? 0 : (i % k) / 64)]
                XCTAssertLessThanOrEqual(abs(deq[i] - fp32[i]), scale * 0.5001, "\(granularity) weight \(i)")
            }
        }
    }

    func testSplitAcrossPoolMatchesSerial() throws {
        var random = TestRandom(seed: 173)
        let (k, outputs, rows) = (96, 100, 20)
        let source = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k, n: 2, m: 4)
        let op = try NMWeightOnlyInt8Weights(source, granularity: .group(32))
        let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        XCTAssertEqual(op.apply(x, activation: .relu, pool: pool).values, op.apply(x, activation: .relu).values)
    }

    func testRefusesGroupsAcrossNMGroupsBadScalesAndValues() throws {
        var random = TestRandom(seed: 174)
        let source = try NMWeights(magnitudePruning: random.array(8 * 16), outputFeatures: 8, inputFeatures: 16, n: 2, m: 8)
        XCTAssertThrowsError(try NMWeightOnlyInt8Weights(source, granularity: .group(4))) { error in
            XCTAssertTrue("\(error)".contains("not a multiple of m = 8"), "\(error)")
        }
        let integers = try NMWeights(prunedWeights: source.denseWeights().map { ($0 * 100).rounded() }, outputFeatures: 8, inputFeatures: 16,
                                     n: 2, m: 8)
        let ones = [Float](repeating: 1, count: 8)
        XCTAssertNoThrow(try NMWeightOnlyInt8Weights(integerPack: integers, scales: ones, granularity: .channel))
        for bad: Float in [0, -1, .nan, .infinity] {
            var scales = ones
            scales[5] = bad
            XCTAssertThrowsError(try NMWeightOnlyInt8Weights(integerPack: integers, scales: scales, granularity: .channel)) { error in
                XCTAssertTrue("\(error)".hasPrefix("scale 5 is"), "\(error)")
            }
        }
        XCTAssertThrowsError(try NMWeightOnlyInt8Weights(integerPack: integers, scales: [1, 1], granularity: .channel))
        let fractions = try NMWeights(prunedWeights: source.denseWeights(), outputFeatures: 8, inputFeatures: 16, n: 2, m: 8)
        XCTAssertThrowsError(try NMWeightOnlyInt8Weights(integerPack: fractions, scales: ones, granularity: .channel)) { error in
            XCTAssertTrue("\(error)".contains("not an integer in -127...127"), "\(error)")
        }
    }
}
