import CSparseKernels
import XCTest
@testable import SparseKernels

/// bf16 weights: the widening levels against an fp64 reference of the bf16 weight; the
/// `vdpbf16ps` level against the same reference with the inputs rounded to bf16 as it rounds them.
final class BF16WeightsTests: XCTestCase {
    static func roundedToBF16(_ x: [Float], _ k: Int) -> [Float] { x.map { Float(bitPattern: UInt32(ss_bf16_from_float($0)) << 16) } }

    func testEveryLevelMatchesReference() throws {
        var random = TestRandom(seed: 91)
        // K = 64 and 384: whole 64-byte blocks, so rows from 16 run on AMX tiles where the CPU has them
        for (k, n) in [(1, 5), (5, 3), (37, 17), (64, 33), (131, 47), (384, 40)] {
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

    /// Split by output panels (K = 77), and on AMX tiles by token rows in 16-row blocks (K = 96,
    /// 70 rows: 4 parts, the last with the 6 rows past the blocks): bit for bit the unsplit result.
    func testSplitAcrossPoolMatchesSerial() throws {
        var random = TestRandom(seed: 92)
        for (k, n, rows) in [(77, 150, 30), (96, 150, 70)] {
            let op = try BF16Weights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k)
            let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
            let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
            XCTAssertEqual(op.apply(x, activation: .tanh, pool: pool).values, op.apply(x, activation: .tanh).values, "k=\(k)")
        }
    }

    /// The AMX level against the dot-product level on the same bf16-rounded inputs: both sum the
    /// same products in fp32, in another order, so they agree to a few units of the last place of
    /// the largest partial sums (here within 2e-5 of outputs of size ~1). 32 x 32 blocks and the
    /// 16-row / 1-panel edges, K of 1 and 12 blocks of 32, rows from 8 (one short tile) and a tail
    /// past the 16-row blocks.
    func testAMXBlocksAgreeWithDotLevel() throws {
        guard QuantizedInstructionSet.available.contains(.amx) else { throw XCTSkip("no AMX on this CPU") }
        var random = TestRandom(seed: 93)
        for (k, n) in [(32, 40), (384, 48)] {
            let op = try BF16Weights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            for rows in [8, 14, 16, 32, 48, 77] {
                let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
                let amx = OperatorChecker.applied(op, x, level: .amx, activation: .gelu)
                let dot = OperatorChecker.applied(op, x, level: .avx512Dot, activation: .gelu)
                XCTAssertNotEqual(amx, [Float](repeating: 0, count: amx.count))
                for (a, b) in zip(amx, dot) { XCTAssertEqual(a, b, accuracy: 2e-5 * max(1, abs(b)), "k=\(k) rows=\(rows)") }
            }
        }
    }
}
