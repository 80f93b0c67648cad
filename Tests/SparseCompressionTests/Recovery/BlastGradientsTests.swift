import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// BLAST blocks as a dense weight (unequal blocks) against a direct sum, and the factor gradients
/// of L = ⟨G, Ŵ(U, s, V)⟩ against central differences.
final class BlastGradientsTests: XCTestCase {
    private let (outputs, inputs, b1, b2, r) = (7, 9, 2, 3, 2)

    /// Ŵ[o, c] = Σ_k U[o, k] s[i, j, k] V[c, k] for o in row block i, c in column block j.
    private func direct(_ u: [Float], _ v: [Float], _ s: [Float]) -> [Float] {
        var w = [Float](repeating: 0, count: outputs * inputs)
        for o in 0..<outputs {
            let i = (0..<b1).last { $0 * outputs / b1 <= o }!
            for c in 0..<inputs {
                let j = (0..<b2).last { $0 * inputs / b2 <= c }!
                w[o * inputs + c] = (0..<r).reduce(Float(0)) { $0 + u[o * r + $1] * s[(i * b2 + j) * r + $1] * v[c * r + $1] }
            }
        }
        return w
    }

    func testDenseWeightOfUnequalBlocks() {
        var random = SeededRandom(seed: 140)
        let u = random.array(outputs * r), v = random.array(inputs * r), s = random.array(b1 * b2 * r)
        let w = BlastGradients.dense(u: u, v: v, s: s, outputs: outputs, inputs: inputs, b1: b1, b2: b2, rank: r)
        let want = direct(u, v, s)
        for i in want.indices { XCTAssertEqual(w[i], want[i], accuracy: 1e-5, "Ŵ[\(i)]") }
    }

    func testFactorGradientsMatchFiniteDifferences() {
        var random = SeededRandom(seed: 141)
        let g = random.array(outputs * inputs)
        let u = TrainableTensor(random.array(outputs * r)), v = TrainableTensor(random.array(inputs * r)), s = TrainableTensor(random.array(b1 * b2 * r))
        BlastGradients.accumulate(g, u: u, v: v, s: s, outputs: outputs, inputs: inputs, b1: b1, b2: b2, rank: r)
        func loss() -> Double {
            let w = direct(u.values, v.values, s.values)
            return zip(g, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let h: Float = 1e-2
        for (name, t) in [("U", u), ("V", v), ("s", s)] {
            for i in t.values.indices {
                let x = t.values[i]
                t.values[i] = x + h
                let up = loss()
                t.values[i] = x - h
                let down = loss()
                t.values[i] = x
                XCTAssertEqual(Double(t.gradient[i]), (up - down) / Double(2 * h), accuracy: 1e-3, "d\(name)[\(i)]")
            }
        }
    }
}
