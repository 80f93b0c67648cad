import Foundation
import XCTest
import SparseKernels

/// NMWeights.stacking: several N:M layers over the same inputs as one operator (MiniLM's fused
/// query/key/value). Heights that are and are not multiples of the 16-row panel, K tails, parts
/// with and without bias; the stacked operator against the fp64 reference and bit for bit against
/// the parts run alone, on every instruction set and split across a pool.
final class NMWeightsStackingTests: XCTestCase {
    /// Parts of `heights` rows over `k` inputs, magnitude-pruned to n:m, a bias on every other part.
    func parts(_ heights: [Int], k: Int, n: Int, m: Int, random: inout TestRandom) throws -> [NMWeights] {
        try heights.enumerated().map { i, rows in
            try NMWeights(magnitudePruning: random.array(rows * k), outputFeatures: rows, inputFeatures: k, n: n, m: m,
                          bias: i % 2 == 0 ? random.array(rows) : nil)
        }
    }

    func testStackedRowsKeepEveryPartsWeightsPositionsAndBias() throws {
        var random = TestRandom(seed: 31)
        for (n, m, k, heights) in [(2, 4, 37, [17, 5, 16]), (2, 4, 64, [16, 16, 16]), (4, 8, 45, [3, 33]), (3, 16, 70, [20, 1, 7])] {
            let parts = try parts(heights, k: k, n: n, m: m, random: &random)
            let stacked = try XCTUnwrap(NMWeights.stacking(parts), "\(n):\(m) \(heights)")
            XCTAssertEqual(stacked.outputFeatures, heights.reduce(0, +))
            XCTAssertEqual(stacked.denseWeights(), parts.flatMap { $0.denseWeights() })
            XCTAssertEqual(stacked.keptMask(), parts.flatMap { $0.keptMask() })
            XCTAssertEqual(stacked.bias, parts.flatMap { $0.bias ?? [Float](repeating: 0, count: $0.outputFeatures) })
            XCTAssertEqual(stacked.nonZeroCount, parts.reduce(0) { $0 + $1.nonZeroCount })
            XCTAssertEqual(stacked.storage, parts[0].storage)
        }
    }

    /// Against the fp64 reference on every ISA, across the kernel switches (selection GEMV at 1–2
    /// rows, multi-row selection, weight-broadcast tiles and their remainder).
    func testStackedOperatorMatchesTheReference() throws {
        var random = TestRandom(seed: 32)
        for (n, m, k, heights) in [(2, 4, 37, [17, 5, 16]), (2, 4, 384, [48, 48, 48]), (4, 8, 45, [3, 33])] {
            let stacked = try XCTUnwrap(NMWeights.stacking(try parts(heights, k: k, n: n, m: m, random: &random)))
            OperatorChecker.check(stacked, dense: stacked.denseWeights(), bias: stacked.bias, rowCounts: [1, 2, 3, 4, 9, 14, 31, 40, 70],
                                  random: &random, "stacked \(n):\(m) k=\(k) \(heights)")
        }
    }

    /// Each row of the stacked call is bit for bit what its part computes alone (same slots in the
    /// same order), unsplit and split by panels across a 2-thread pool.
    func testStackedRowsEqualThePartsBitForBit() throws {
        var random = TestRandom(seed: 33)
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        for (k, heights) in [(37, [17, 5, 16]), (384, [64, 64, 64])] {
            let parts = try parts(heights, k: k, n: 2, m: 4, random: &random)
            let stacked = try XCTUnwrap(NMWeights.stacking(parts))
            for rows in [1, 2, 4, 14, 33] {
                let x = random.array(rows * k)
                for isa in InstructionSet.available {
                    let alone = parts.map { OperatorChecker.run($0, x: x, rows: rows, activation: .gelu, isa: isa) }
                    for usePool in [nil, pool] {
                        let together = OperatorChecker.run(stacked, x: x, rows: rows, activation: .gelu, isa: isa, pool: usePool)
                        var expected: [Float] = []
                        for r in 0..<rows {
                            for (part, y) in zip(parts, alone) { expected += y[(r * part.outputFeatures)..<((r + 1) * part.outputFeatures)] }
                        }
                        XCTAssertEqual(together, expected, "k=\(k) rows=\(rows) \(isa) pool=\(usePool != nil)")
                    }
                }
            }
        }
    }

    func testPartsThatDoNotStack() throws {
        var random = TestRandom(seed: 34)
        let a = try parts([8], k: 16, n: 2, m: 4, random: &random)[0]
        XCTAssertNil(NMWeights.stacking([]))
        XCTAssertNil(NMWeights.stacking([a, try parts([8], k: 20, n: 2, m: 4, random: &random)[0]]), "different inputs")
        XCTAssertNil(NMWeights.stacking([a, try parts([8], k: 16, n: 1, m: 4, random: &random)[0]]), "different n")
        XCTAssertNil(NMWeights.stacking([a, try parts([8], k: 16, n: 4, m: 8, random: &random)[0]]), "different m")
        let unbiased = try [8, 3].map { try NMWeights(magnitudePruning: random.array($0 * 16), outputFeatures: $0, inputFeatures: 16, n: 2, m: 4) }
        XCTAssertNil(try XCTUnwrap(NMWeights.stacking(unbiased)).bias, "no part has a bias")
    }
}
