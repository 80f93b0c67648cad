import Foundation
import XCTest
import SparseKernels
import SparseModels
@testable import SparseCompression

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
        XCTAssertEqual(err, fit.relativeError, accuracy: 1e-4, "the operator holds the fitted factors")
    }

    /// A rank-r matrix is fitted exactly with b = 1; shapes that do not divide are refused.
    func testSingleBlockIsLowRank() throws {
        var rng = SplitMix(seed: 3)
        let m = 32, n = 24, r = 3
        let a = (0..<(m * r)).map { _ in rng.normal() }, c = (0..<(r * n)).map { _ in rng.normal() }
        let lowRank = DoubleMatrix.multiply(a, m, r, c, n).map(Float.init)
        let fit = try BlastFactorization(fitting: lowRank, rows: m, columns: n, rowBlocks: 1, columnBlocks: 1, rank: r, iterations: 60)
        XCTAssertLessThan(fit.relativeError, 1e-3)
        XCTAssertThrowsError(try BlastFactorization(fitting: lowRank, rows: m, columns: n, rowBlocks: 5, columnBlocks: 1, rank: 2))
        XCTAssertEqual(BlastFactorization.rank(rows: 1536, columns: 384, rowBlocks: 4, columnBlocks: 4, parameterRatio: 0.5), 152)
    }

    /// Singular values of a (rows × cols) matrix in double precision: square roots of the
    /// eigenvalues of AᵀA by cyclic Jacobi rotations (written for this test; flat buffers so it is
    /// quick enough in debug builds).
    static func singularValues(_ a: [Double], rows: Int, cols n: Int) -> [Double] {
        let g = UnsafeMutablePointer<Double>.allocate(capacity: n * n)
        defer { g.deallocate() }
        g.initialize(repeating: 0, count: n * n)
        a.withUnsafeBufferPointer { ap in
            for x in 0..<rows {
                let row = ap.baseAddress! + x * n
                for i in 0..<n where row[i] != 0 { for j in 0..<n { g[i * n + j] += row[i] * row[j] } }
            }
        }
        var diagonal = 0.0
        for i in 0..<n { diagonal += g[i * n + i] * g[i * n + i] }
        for _ in 0..<50 {
            var off = 0.0
            for i in 0..<n { for j in (i + 1)..<n { off += g[i * n + j] * g[i * n + j] } }
            if off <= 1e-24 * diagonal { break }
            for p in 0..<(n - 1) { for q in (p + 1)..<n {
                let apq = g[p * n + q]
                if abs(apq) < 1e-300 { continue }
                let theta = (g[q * n + q] - g[p * n + p]) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                let rp = g + p * n, rq = g + q * n
                for k in 0..<n {  // rows p, q
                    let gp = rp[k], gq = rq[k]
                    rp[k] = c * gp - s * gq
                    rq[k] = s * gp + c * gq
                }
                for k in 0..<n {  // columns p, q
                    let rk = g + k * n
                    let gp = rk[p], gq = rk[q]
                    rk[p] = c * gp - s * gq
                    rk[q] = s * gp + c * gq
                }
            } }
        }
        return (0..<n).map { max(0, g[$0 * n + $0]).squareRoot() }.sorted(by: >)
    }

    /// Relative error of the best rank-k approximation (truncated SVD).
    static func svdError(_ sigma: [Double], rank k: Int) -> Double {
        let total = sigma.reduce(0) { $0 + $1 * $1 }
        return (sigma[k...].reduce(0) { $0 + $1 * $1 } / total).squareRoot()
    }

    /// b = 1 (plain low rank) on a 256×512 Gaussian at rank 85: the fit's error is within 0.1 % of
    /// the truncated-SVD error (the optimum). With damping δ = 0.01 this takes 100 steps (measured
    /// ratio 1.00005); the default δ = 0.1 needs about 300 (1.0009), see Benchmarks/README.md.
    func testSingleBlockMatchesTruncatedSVD() throws {
        var rng = SplitMix(seed: 1)
        let m = 256, n = 512, r = 85
        let a = (0..<(m * n)).map { _ in rng.normal() }
        // singular values of the 512×256 transpose (Gram 256×256)
        let sigma = Self.singularValues(DoubleMatrix.transpose(a, m, n), rows: n, cols: m)
        let optimum = Self.svdError(sigma, rank: r)
        let start = Date()
        let fit = try BlastFactorization(fitting: a.map(Float.init), rows: m, columns: n, rowBlocks: 1, columnBlocks: 1, rank: r,
                                         iterations: 100, delta: 0.01)
        print(String(format: "BLAST b=1 r=%d on 256x512 Gaussian: error %.5f, truncated SVD %.5f (ratio %.5f), %.1f s",
                     r, fit.relativeError, optimum, fit.relativeError / optimum, Date().timeIntervalSince(start)))
        XCTAssertLessThanOrEqual(fit.relativeError, optimum * 1.001)
        XCTAssertGreaterThanOrEqual(fit.relativeError, optimum * (1 - 1e-4), "nothing beats the SVD")
    }

    /// A planted BLAST(b=4, r=32) 256×512 matrix plus 1 % noise is recovered by a b=4, r=64 fit
    /// (δ = 0.1) to ≤ 0.02 relative error; truncated SVD with the same parameters is far worse.
    /// 200 steps give 0.0145 (300, the design notes' count, give 0.0119: slower in debug builds).
    func testRecoversPlantedBlastPlusNoise() throws {
        var rng = SplitMix(seed: 2)
        let m = 256, n = 512, b = 4, r0 = 32, r = 64
        let p = m / b, q = n / b
        let u = (0..<(b * p * r0)).map { _ in rng.normal() }, v = (0..<(b * q * r0)).map { _ in rng.normal() }
        let s = (0..<(b * b * r0)).map { _ in rng.normal() }
        var a = [Double](repeating: 0, count: m * n)
        for i in 0..<b { for j in 0..<b { for x in 0..<p { for y in 0..<q {
            var sum = 0.0
            for k in 0..<r0 { sum += u[(i * p + x) * r0 + k] * s[(i * b + j) * r0 + k] * v[(j * q + y) * r0 + k] }
            a[(i * p + x) * n + j * q + y] = sum
        } } } }
        let noise = (0..<(m * n)).map { _ in rng.normal() }
        let scale = (a.reduce(0) { $0 + $1 * $1 } / noise.reduce(0) { $0 + $1 * $1 }).squareRoot()
        for e in 0..<(m * n) { a[e] += 0.01 * scale * noise[e] }
        let start = Date()
        let fit = try BlastFactorization(fitting: a.map(Float.init), rows: m, columns: n, rowBlocks: b, columnBlocks: b, rank: r, iterations: 200)
        let sigma = Self.singularValues(DoubleMatrix.transpose(a, m, n), rows: n, cols: m)
        let svd = Self.svdError(sigma, rank: r * (m + n + b * b) / (m + n))
        print(String(format: "BLAST b=4 r=64 on planted BLAST(4, 32) + 1%% noise: error %.4f (equal-parameter SVD %.4f), %.1f s",
                     fit.relativeError, svd, Date().timeIntervalSince(start)))
        XCTAssertLessThanOrEqual(fit.relativeError, 0.02)
        XCTAssertGreaterThan(svd, 0.1)
    }
}
