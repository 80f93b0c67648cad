import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// The whitened BLAST fit is the plain fit of W̃_j = W_j L_j (H_jj / mean diag + λI = L_j L_jᵀ)
/// mapped back by L_j⁻¹: Ŵ_j L_j equals the plain fit of W̃ (so the BLAST structure is kept), and an
/// isotropic H gives the plain fit of W itself.
/// (DataAwareFitTests: it beats the weight-only fit on ‖(W − Ŵ)X‖.)
final class WhitenedBlastTests: XCTestCase {
    private let rows = 12, columns = 16, blocks = 2, rank = 3, damping = 0.01

    /// Lower Cholesky factor of a q × q symmetric positive definite matrix (row-major).
    private func cholesky(_ a: [Double], _ q: Int) -> [Double] {
        var l = [Double](repeating: 0, count: q * q)
        for i in 0..<q {
            for j in 0...i {
                let s = a[i * q + j] - (0..<j).reduce(0.0) { $0 + l[i * q + $1] * l[j * q + $1] }
                l[i * q + j] = i == j ? s.squareRoot() : s / l[j * q + j]
            }
        }
        return l
    }

    private func dense(_ fit: BlastFactorization) throws -> [Float] { try fit.makeOperator(bias: nil).denseWeights() }

    func testWhitenedFitMapsBackThePlainFitOfTheWhitenedWeight() throws {
        var random = SeededRandom(seed: 150)
        let w = random.array(rows * columns)
        // A gram with correlated inputs: H = Σ x xᵀ over 50 rows of a shared factor plus noise.
        let tokens = 50, shared = random.array(tokens)
        let x = (0..<tokens * columns).map { shared[$0 / columns] + 0.5 * random.next() }
        var h = [Double](repeating: 0, count: columns * columns)
        for t in 0..<tokens { for i in 0..<columns { for j in 0..<columns {
            h[i * columns + j] += Double(x[t * columns + i]) * Double(x[t * columns + j])
        } } }
        let whitened = try dense(try WhitenedBlast.fit(weights: w, rows: rows, columns: columns, blocks: blocks, rank: rank, iterations: 30,
                                                       gram: h, damping: damping))
        let q = columns / blocks, mean = (0..<columns).reduce(0.0) { $0 + h[$1 * columns + $1] } / Double(columns)
        var tilde = [Float](repeating: 0, count: rows * columns), mappedBack = tilde
        for j in 0..<blocks {
            var a = (0..<q * q).map { h[(j * q + $0 / q) * columns + j * q + $0 % q] / mean }
            for d in 0..<q { a[d * q + d] += damping }
            let l = cholesky(a, q)
            for r in 0..<rows {
                for b in 0..<q {
                    var wl = 0.0, fitL = 0.0
                    for c in b..<q {
                        wl += Double(w[r * columns + j * q + c]) * l[c * q + b]
                        fitL += Double(whitened[r * columns + j * q + c]) * l[c * q + b]
                    }
                    tilde[r * columns + j * q + b] = Float(wl)
                    mappedBack[r * columns + j * q + b] = Float(fitL)
                }
            }
        }
        let plain = try dense(try BlastFactorization(fitting: tilde, rows: rows, columns: columns, rowBlocks: blocks, columnBlocks: blocks,
                                                     rank: rank, iterations: 30))
        for i in plain.indices { XCTAssertEqual(mappedBack[i], plain[i], accuracy: 2e-4 * max(1, abs(plain[i])), "Ŵ L [\(i)]") }
    }

    /// H = c·I without damping: every L_j is the identity, so the result is the plain fit of W.
    func testIsotropicGramGivesThePlainFit() throws {
        var random = SeededRandom(seed: 151)
        let w = random.array(rows * columns)
        var h = [Double](repeating: 0, count: columns * columns)
        for i in 0..<columns { h[i * columns + i] = 7 }
        let whitened = try dense(try WhitenedBlast.fit(weights: w, rows: rows, columns: columns, blocks: blocks, rank: rank, iterations: 30,
                                                       gram: h, damping: 0))
        let plain = try dense(try BlastFactorization(fitting: w, rows: rows, columns: columns, rowBlocks: blocks, columnBlocks: blocks,
                                                     rank: rank, iterations: 30))
        for i in plain.indices { XCTAssertEqual(whitened[i], plain[i], accuracy: 1e-4, "Ŵ[\(i)]") }
    }
}
