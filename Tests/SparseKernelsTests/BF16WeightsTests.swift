import CSparseKernels
import XCTest
@testable import SparseKernels

/// bf16 weights: the widening levels against an fp64 reference of the bf16 weight; the
/// `vdpbf16ps` level against the same reference with the inputs rounded to bf16 as it rounds them.
final class BF16WeightsTests: XCTestCase {
    static func roundedToBF16(_ x: [Float], _ k: Int) -> [Float] { x.map { Float(bitPattern: UInt32(ss_bf16_from_float($0)) << 16) } }

    func testEveryLevelMatchesReference() throws {
        var random = TestRandom(seed: 91)
        for (k, n) in [(1, 5), (5, 3), (37, 17), (64, 33), (131, 47)] {
            let op = try BF16Weights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            let w = op.denseWeights()
            for level in QuantizedInstructionSet.available {
                let pinned = PinnedLevel(op) { x, rows, ldx, y, ldy, act, pool in
                    op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: act, pool: pool, level: level)
                }
                OperatorChecker.checkTransformed(pinned, dense: w, bias: op.bias, rowCounts: [1, 2, 3, 8, 17, 33, 70], random: &random,
                                                 transform: level >= .avx512Dot ? Self.roundedToBF16 : { x, _ in x },
                                                 "bf16 k=\(k) n=\(n) \(level)")
            }
        }
    }

    func testRoundingIsNearestEvenAndRefusesNonFinite() throws {
        XCTAssertEqual(ss_bf16_from_float(1.0), 0x3F80)
        XCTAssertEqual(ss_bf16_from_float(Float(bitPattern: 0x3F80_8000)), 0x3F80)  // tie: even stays
        XCTAssertEqual(ss_bf16_from_float(Float(bitPattern: 0x3F81_8000)), 0x3F82)  // tie: odd rounds up
        XCTAssertEqual(ss_bf16_from_float(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertThrowsError(try BF16Weights(weights: [1, .infinity], outputFeatures: 1, inputFeatures: 2))
        XCTAssertThrowsError(try BF16Weights(bits: [0x3F80, 0x7FC0], outputFeatures: 1, inputFeatures: 2)) { error in
            XCTAssertEqual(error as? QuantizationError, .nonFiniteWeight(index: 1))
        }
        XCTAssertThrowsError(try BF16Weights(bits: [0x3F80], outputFeatures: 1, inputFeatures: 2))
    }

    func testSplitAcrossPoolMatchesSerial() throws {
        var random = TestRandom(seed: 92)
        let (k, n, rows) = (77, 150, 30)
        let op = try BF16Weights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k)
        let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        XCTAssertEqual(op.apply(x, activation: .tanh, pool: pool).values, op.apply(x, activation: .tanh).values)
    }
}
