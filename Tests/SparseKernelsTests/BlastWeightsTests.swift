import Foundation
import XCTest
import SparseKernels

/// BLAST operators (three-step kernel) against their own dense weight: b in {1, 2, 3, 4, 8},
/// b1 ≠ b2, blocks of unequal size, ranks from 1 up, every instruction set.
final class BlastWeightsTests: XCTestCase {
    func testMatchesItsDenseWeight() throws {
        var random = TestRandom(seed: 3)
        let cases: [(n: Int, k: Int, b1: Int, b2: Int, r: Int)] = [
            (12, 18, 2, 3, 4), (32, 32, 4, 4, 5), (40, 24, 1, 2, 7), (16, 48, 4, 1, 1), (24, 24, 8, 8, 3),
            (48, 40, 8, 4, 17), (33, 20, 3, 2, 6),   // 33 outputs in 3 blocks of 11
            (30, 25, 4, 3, 9),                        // uneven: 7/8/7/8 outputs, 8/8/9 inputs
        ]
        for c in cases {
            let op = try BlastWeights(u: random.array(c.n * c.r), v: random.array(c.k * c.r), s: random.array(c.b1 * c.b2 * c.r),
                                      outputFeatures: c.n, inputFeatures: c.k, rowBlocks: c.b1, columnBlocks: c.b2, rank: c.r,
                                      bias: random.array(c.n))
            XCTAssertEqual(op.parameterCount, c.r * (c.n + c.k + c.b1 * c.b2) + c.n)
            OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 3, 20, 37], random: &random,
                                  tolerance: 2e-5, "blast \(c.n)x\(c.k) b=\(c.b1)x\(c.b2) r=\(c.r)")
        }
    }

    /// The dense weight is Σ_t U_i[a, t] s_ij[t] V_j[b, t] blockwise (checked by hand for one block).
    func testDenseWeightLayout() throws {
        // 2 x 2 blocks of 1 x 1, rank 2: W[i][j] = Σ_t u[i][t] s[(i*2+j)*2+t] v[j][t]
        let u: [Float] = [1, 2, 3, 4], v: [Float] = [5, 6, 7, 8], s: [Float] = [1, 0, 0, 1, 2, 2, 1, -1]
        let op = try BlastWeights(u: u, v: v, s: s, outputFeatures: 2, inputFeatures: 2, rowBlocks: 2, columnBlocks: 2, rank: 2)
        let expected: [Float] = [5, 16, 78, -11]  // 1·5, 2·8, 3·2·5 + 4·2·6, 3·7 − 4·8
        XCTAssertEqual(op.denseWeights(), expected)
    }

    func testRejectsBadShapes() {
        XCTAssertThrowsError(try BlastWeights(u: [], v: [], s: [], outputFeatures: 10, inputFeatures: 8, rowBlocks: 3, columnBlocks: 2, rank: 1))
        XCTAssertThrowsError(try BlastWeights(u: [1], v: [1], s: [1], outputFeatures: 1, inputFeatures: 1, rowBlocks: 2, columnBlocks: 1, rank: 1))
        XCTAssertThrowsError(try BlastWeights(u: [1], v: [1], s: [1], outputFeatures: 1, inputFeatures: 1, rowBlocks: 1, columnBlocks: 1, rank: 0))
    }

    /// Quantized U and V: the layer against the fp64 reference of its dequantised factors. bf16
    /// rounds the activations on the dot-product level and int8 quantizes them per row at both
    /// GEMM steps, so the tolerance is that of 8-bit (int8) or bf16 activations; weight-only int8
    /// keeps fp32 activations (fp32 rounding of three steps).
    func testQuantizedFactorsMatchDequantisedReference() throws {
        var random = TestRandom(seed: 33)
        for (storage, tolerance) in [(BlastFactorStorage.bf16, 1e-2), (.int8, 3e-2), (.int8WeightOnly, 1e-4)] {
            for (n, k, b1, b2, r) in [(40, 24, 4, 3, 5), (33, 50, 2, 5, 17)] {
                let op = try BlastWeights(u: random.array(n * r), v: random.array(k * r), s: random.array(b1 * b2 * r), outputFeatures: n,
                                          inputFeatures: k, rowBlocks: b1, columnBlocks: b2, rank: r, bias: random.array(n),
                                          factorStorage: storage)
                XCTAssertTrue(op.storage.hasSuffix(storage.rawValue))
                OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 3, 20, 128], activations: [.none, .relu],
                                      random: &random, tolerance: tolerance, "blast \(storage) \(n)x\(k)")
            }
        }
    }
}
