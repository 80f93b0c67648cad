import Foundation
import XCTest
import SparseKernels
@testable import SparseModels

final class BlastFactorizationTests: XCTestCase {
    /// A matrix that is exactly BLAST(b=4, r=4) plus 1 % noise is recovered to about the noise
    /// floor, and the operator built from the fit computes with the fitted weight.
    func testRecoversAnExactBlastMatrix() throws {
        var rng = SplitMix(seed: 7)
        let m = 48, n = 64, b = 4, r0 = 4
        let truth = try BlastWeights(u: (0..<(m * r0)).map { _ in Float(rng.normal()) }, v: (0..<(n * r0)).map { _ in Float(rng.normal()) },
                                     s: (0..<(b * b * r0)).map { _ in Float(rng.normal()) }, outputFeatures: m, inputFeatures: n,
                                     rowBlocks: b, columnBlocks: b, rank: r0)
        let clean = truth.denseWeights()
        let scale = (clean.reduce(0) { $0 + $1 * $1 } / Float(clean.count)).squareRoot()
        let noisy = clean.map { $0 + 0.01 * scale * Float(rng.normal()) }
        let fit = try BlastFactorization(fitting: noisy, rows: m, columns: n, rowBlocks: b, columnBlocks: b, rank: 6, iterations: 60)
        XCTAssertLessThan(fit.relativeError, 0.05, "fit error \(fit.relativeError)")
        let op = try fit.makeOperator(bias: nil)
        let w = op.denseWeights()
        let err = (zip(w, noisy).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / noisy.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        XCTAssertEqual(err, fit.relativeError, accuracy: 1e-3, "the operator holds the fitted factors")
    }

    /// b = 1 is a rank-r approximation: its error cannot beat the best rank-r one, and a rank-r
    /// matrix is fitted exactly.
    func testSingleBlockIsLowRank() throws {
        var rng = SplitMix(seed: 3)
        let m = 32, n = 24, r = 3
        let a = (0..<(m * r)).map { _ in rng.normal() }, c = (0..<(r * n)).map { _ in rng.normal() }
        let lowRank = Dense.multiply(a, m, r, c, n).map(Float.init)
        let fit = try BlastFactorization(fitting: lowRank, rows: m, columns: n, rowBlocks: 1, columnBlocks: 1, rank: r, iterations: 60)
        XCTAssertLessThan(fit.relativeError, 1e-3)
        XCTAssertThrowsError(try BlastFactorization(fitting: lowRank, rows: m, columns: n, rowBlocks: 5, columnBlocks: 1, rank: 2))
        XCTAssertEqual(BlastFactorization.rank(rows: 1536, columns: 384, rowBlocks: 4, columnBlocks: 4, parameterRatio: 0.5), 152)
    }
}
