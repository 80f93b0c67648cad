import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// SparseGPT pruning from a Gram matrix: the factor U of the damped inverse (against a Gauss–Jordan
/// inverse), dead inputs, the H-weighted saliency (exact on a diagonal H, where nothing is
/// compensated), compensation that lowers the output error of the same mask, a fixed mask
/// followed, rows split over the pool like one by one, and refusals.
/// (GPTQ rounding with the same sweep: SecondOrderQuantizationTests.)
final class SecondOrderPruningTests: XCTestCase {
    /// (a)⁻¹ of a small symmetric positive definite matrix, by Gauss–Jordan elimination.
    static func inverse(_ a: [Double], _ n: Int) -> [Double] {
        var m = a, inv = (0..<n * n).map { $0 / n == $0 % n ? 1.0 : 0.0 }
        for c in 0..<n {
            let p = (c..<n).max { abs(m[$0 * n + c]) < abs(m[$1 * n + c]) }!
            for k in 0..<n { m.swapAt(c * n + k, p * n + k); inv.swapAt(c * n + k, p * n + k) }
            let d = m[c * n + c]
            for k in 0..<n { m[c * n + k] /= d; inv[c * n + k] /= d }
            for r in 0..<n where r != c {
                let f = m[r * n + c]
                for k in 0..<n { m[r * n + k] -= f * m[c * n + k]; inv[r * n + k] -= f * inv[c * n + k] }
            }
        }
        return inv
    }

    /// H + damping · mean(diag H) · I.
    static func damped(_ h: [Double], _ n: Int, _ damping: Double) -> [Double] {
        let mean = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] } / Double(n)
        return h.indices.map { $0 / n == $0 % n ? h[$0] + damping * mean : h[$0] }
    }

    func correlated(rows: Int, features: Int, tokens: Int, seed: UInt64) throws -> (w: [Float], x: [Float], gram: [Double]) {
        var random = SeededRandom(seed: seed)
        let x = DataAwareFitTests.inputs(tokens: tokens, features: features, random: &random)
        return (random.array(rows * features), x, try DataAwareFitTests.statistics(x, tokens: tokens, features: features).gram)
    }

    func testFactorIsTheUpperCholeskyFactorOfTheDampedInverse() throws {
        let n = 6
        let (_, _, gram) = try correlated(rows: 1, features: n, tokens: 50, seed: 101)
        let sweep = try SecondOrderPruning(gram: gram, features: n, damping: 0.05)
        let u = sweep.factor, inv = Self.inverse(Self.damped(gram, n, 0.05), n)
        XCTAssertEqual(sweep.features, n)
        XCTAssertEqual(sweep.dead, [UInt8](repeating: 0, count: n))
        for i in 0..<n {
            for j in 0..<i { XCTAssertEqual(u[i * n + j], 0, "U is upper triangular") }
            for j in 0..<n {
                let utu = (0..<n).reduce(0.0) { $0 + u[$1 * n + i] * u[$1 * n + j] }
                XCTAssertEqual(utu, inv[i * n + j], accuracy: 1e-9 * abs(inv[i * n + i]), "(UᵀU)[\(i)][\(j)]")
            }
            XCTAssertEqual(sweep.inverseDiagonal[i], inv[i * n + i], accuracy: 1e-9 * inv[i * n + i])
        }
    }

    /// An input never seen (zero row and column of H) is dead: its weights go, whatever the mask.
    func testDeadInputsAreDropped() throws {
        let n = 8
        var (w, _, gram) = try correlated(rows: 4, features: n, tokens: 60, seed: 102)
        for k in 0..<n { gram[2 * n + k] = 0; gram[k * n + 2] = 0 }
        let sweep = try SecondOrderPruning(gram: gram, features: n, damping: 0.01)
        XCTAssertEqual(sweep.dead, [0, 0, 1, 0, 0, 0, 0, 0])
        var kept = w
        try sweep.prune(&kept, rows: 4, n: 1, m: 1, mask: [UInt8](repeating: 1, count: 4 * n))
        for r in 0..<4 { XCTAssertEqual(kept[r * n + 2], 0, "row \(r)") }
        try sweep.prune(&w, rows: 4, n: 2, m: 4)
        for r in 0..<4 { XCTAssertEqual(w[r * n + 2], 0, "row \(r)") }
    }

    /// Diagonal H: U is diagonal, so the sweep keeps the n of m largest |w_ij|·√(H_jj + λ) and moves
    /// no kept weight.
    func testDiagonalGramPrunesByWeightedMagnitudeWithoutCompensation() throws {
        let (rows, n) = (8, 16)
        var random = SeededRandom(seed: 103)
        let w = random.array(rows * n), d = (0..<n).map { Double(1 + $0 % 5) }
        let gram = (0..<n * n).map { $0 / n == $0 % n ? d[$0 % n] : 0 }
        let lambda = 0.01 * d.reduce(0, +) / Double(n)
        let scores = (0..<w.count).map { abs(w[$0]) * Float((d[$0 % n] + lambda).squareRoot()) }
        let expectedMask = NMWeights.magnitudeKept(scores, outputFeatures: rows, inputFeatures: n, n: 2, m: 4)
        XCTAssertNotEqual(expectedMask, NMWeights.magnitudeKept(w, outputFeatures: rows, inputFeatures: n, n: 2, m: 4),
                          "the diagonal reorders some choices")
        var pruned = w
        let mask = try SecondOrderPruning(gram: gram, features: n, damping: 0.01).prune(&pruned, rows: rows, n: 2, m: 4)
        XCTAssertEqual(mask, expectedMask.map { $0 ? 1 : 0 })
        XCTAssertEqual(pruned, zip(w, expectedMask).map { $1 ? $0 : 0 })
    }

    /// Correlated inputs: exactly 2 of every 4 kept, and the compensated weights beat the same mask
    /// applied to the original weights on ‖(W − Ŵ) Xᵀ‖.
    func testCompensationLowersTheOutputErrorOfTheSameMask() throws {
        let (rows, n, tokens) = (16, 32, 300)
        let (w, x, gram) = try correlated(rows: rows, features: n, tokens: tokens, seed: 104)
        let sweep = try SecondOrderPruning(gram: gram, features: n, damping: 0.01)
        var pruned = w
        let mask = try sweep.prune(&pruned, rows: rows, n: 2, m: 4)
        for r in 0..<rows {
            for g in stride(from: 0, to: n, by: 4) { XCTAssertEqual((0..<4).reduce(0) { $0 + Int(mask[r * n + g + $1]) }, 2) }
        }
        for i in w.indices where mask[i] == 0 { XCTAssertEqual(pruned[i], 0) }
        let masked = zip(w, mask).map { $1 == 1 ? $0 : 0 }
        let compensated = DataAwareFitTests.outputError(w, pruned, x: x, rows: rows, features: n, tokens: tokens)
        let plain = DataAwareFitTests.outputError(w, masked, x: x, rows: rows, features: n, tokens: tokens)
        XCTAssertLessThan(compensated, plain, "compensated \(compensated) vs masked \(plain)")
    }

    /// A given mask (any pattern, here about 40 % kept) is followed exactly, with compensation.
    func testFixedMaskIsFollowedAndCompensated() throws {
        let (rows, n, tokens) = (8, 24, 200)
        let (w, x, gram) = try correlated(rows: rows, features: n, tokens: tokens, seed: 105)
        let fixed = (0..<rows * n).map { UInt8(($0 * 7 + $0 / n) % 5 < 2 ? 1 : 0) }
        var pruned = w
        let mask = try SecondOrderPruning(gram: gram, features: n, damping: 0.01).prune(&pruned, rows: rows, n: 1, m: 1, mask: fixed)
        XCTAssertEqual(mask, fixed)
        for i in w.indices where fixed[i] == 0 { XCTAssertEqual(pruned[i], 0) }
        let masked = zip(w, fixed).map { $1 == 1 ? $0 : 0 }
        XCTAssertLessThan(DataAwareFitTests.outputError(w, pruned, x: x, rows: rows, features: n, tokens: tokens),
                          DataAwareFitTests.outputError(w, masked, x: x, rows: rows, features: n, tokens: tokens))
    }

    /// Rows are independent: 40 rows split over a pool give each row what it gets alone.
    func testRowsSplitOverThePoolLikeOneByOne() throws {
        let (rows, n) = (40, 16)
        let (w, _, gram) = try correlated(rows: rows, features: n, tokens: 100, seed: 106)
        let sweep = try SecondOrderPruning(gram: gram, features: n, damping: 0.01)
        var all = w
        let mask = try sweep.prune(&all, rows: rows, n: 2, m: 4, pool: KernelPool(threads: 2, minimumSplitSeconds: 0))
        for r in [0, 7, 8, 23, 39] {
            var one = Array(w[r * n ..< (r + 1) * n])
            let oneMask = try sweep.prune(&one, rows: 1, n: 2, m: 4, pool: KernelPool(threads: 1))
            XCTAssertEqual(one, Array(all[r * n ..< (r + 1) * n]), "row \(r)")
            XCTAssertEqual(oneMask, Array(mask[r * n ..< (r + 1) * n]), "row \(r)")
        }
    }

    func testRefusals() throws {
        assertError(try SecondOrderPruning(gram: [1, .nan, .nan, 1], features: 2, damping: 0.01), contains: ["inverse-Hessian factor"])
        assertError(try SecondOrderPruning(gram: [1, 0, 0], features: 2, damping: 0.01), contains: ["3 Gram entries for 2 inputs"])
        let sweep = try SecondOrderPruning(gram: (0..<25).map { $0 / 5 == $0 % 5 ? 2 : 0 }, features: 5, damping: 0.01)
        var w = [Float](repeating: 1, count: 10)
        assertError(try sweep.prune(&w, rows: 2, n: 2, m: 4), contains: ["OBS sweep"])   // 5 inputs: no whole groups of 4
        var short = [Float](repeating: 1, count: 9)
        assertError(try sweep.prune(&short, rows: 2, n: 1, m: 1, mask: [UInt8](repeating: 1, count: 10)), contains: ["9 weights", "2 rows of 5"])
        assertError(try sweep.prune(&w, rows: 2, n: 1, m: 1, mask: [1, 0]), contains: ["2 mask entries"])
        assertError(try sweep.prune(&w, rows: 2, n: 2, m: 0), contains: ["OBS sweep"])
        XCTAssertEqual(w, [Float](repeating: 1, count: 10), "refused sweeps leave the weights alone")
    }
}
