import Foundation
import XCTest
import SparseKernels

/// Linear recurrence h_t = a ⊙ h_{t−1} + B·x_t + b: the unrolled lower-triangular matrix is the
/// recurrence (against a float64 loop), and the scan equals the matrix (T = 128) on every
/// instruction set, with a pool, with a compressed B, for every state and for the last one only.
final class LinearRecurrenceTests: XCTestCase {
    /// The states of one time-major row in float64: steps × d (or the last d).
    func directRecurrence(_ x: [Float], steps: Int, c: Int, weight: [Float], bias: [Float]?, decay: [Float]) -> [Double] {
        let d = decay.count
        var h = [Double](repeating: 0, count: d), out: [Double] = []
        for t in 0..<steps {
            for o in 0..<d {
                var u = Double(bias?[o] ?? 0)
                for i in 0..<c { u += Double(weight[o * c + i]) * Double(x[t * c + i]) }
                h[o] = Double(decay[o]) * h[o] + u
            }
            out += h
        }
        return out
    }

    func testLowerTriangularMatrixIsTheUnrolledRecurrence() {
        var random = TestRandom(seed: 81)
        let (steps, c, d) = (9, 3, 4)
        let weight = random.array(d * c), bias = random.array(d), decay = random.array(d).map { 0.9 * $0 }
        let x = random.array(steps * c)
        let expected = directRecurrence(x, steps: steps, c: c, weight: weight, bias: bias, decay: decay)
        for lastOnly in [false, true] {
            let (w, b) = LinearRecurrence.lowerTriangular(weight: weight, bias: bias, decay: decay, steps: steps, lastOnly: lastOnly)
            let rows = lastOnly ? d : steps * d
            XCTAssertEqual(w.count, rows * steps * c)
            for r in 0..<rows {
                var y = Double(b![r])
                for k in 0..<(steps * c) { y += Double(w[r * steps * c + k]) * Double(x[k]) }
                let want = expected[lastOnly ? (steps - 1) * d + r : r]
                XCTAssertEqual(y, want, accuracy: 1e-5 * max(1, abs(want)), "row \(r) lastOnly=\(lastOnly)")
            }
            // strictly upper blocks are zero: state t never reads a later input
            if !lastOnly {
                for t in 0..<steps {
                    for o in 0..<d {
                        for k in ((t + 1) * c)..<(steps * c) { XCTAssertEqual(w[(t * d + o) * steps * c + k], 0) }
                    }
                }
            }
        }
    }

    func testScanEqualsLowerTriangularMatrixAtT128() throws {
        var random = TestRandom(seed: 82)
        let (steps, c, d) = (128, 6, 20)
        let weight = random.array(d * c), bias = random.array(d), decay = random.array(d).map { 0.95 * $0 }
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        for lastOnly in [false, true] {
            let scan = RecurrenceScan(input: DenseWeights(weights: weight, outputFeatures: d, inputFeatures: c), bias: bias,
                                      decay: decay, steps: steps, lastOnly: lastOnly)
            let (w, b) = LinearRecurrence.lowerTriangular(weight: weight, bias: bias, decay: decay, steps: steps, lastOnly: lastOnly)
            XCTAssertEqual(scan.inputFeatures, steps * c)
            XCTAssertEqual(scan.outputFeatures, (lastOnly ? 1 : steps) * d)
            OperatorChecker.check(scan, dense: w, bias: b, rowCounts: [1, 3, 5], random: &random, "scan lastOnly=\(lastOnly)")
            OperatorChecker.check(scan, dense: w, bias: b, rowCounts: [4], activations: [.tanh], random: &random, pool: pool,
                                  "scan pool lastOnly=\(lastOnly)")
            let matrix = DenseWeights(weights: w, outputFeatures: scan.outputFeatures, inputFeatures: scan.inputFeatures, bias: b)
            let x = Matrix(rows: 3, columns: scan.inputFeatures, values: random.array(3 * scan.inputFeatures))
            let fromScan = scan.apply(x), fromMatrix = matrix.apply(x)
            let worst = zip(fromScan.values, fromMatrix.values).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, "scan vs matrix lastOnly=\(lastOnly)")
        }
    }

    func testScanWithCompressedInputWeights() throws {
        var random = TestRandom(seed: 83)
        let (steps, c, d) = (40, 16, 8)
        let weight = random.array(d * c), decay = random.array(d).map { 0.8 * $0 }
        let input = try NMWeights(magnitudePruning: weight, outputFeatures: d, inputFeatures: c, n: 2, m: 4)
        let scan = RecurrenceScan(input: input, decay: decay, steps: steps)
        XCTAssertTrue(scan.storage.contains("nm 2:4"), scan.storage)
        let (w, _) = LinearRecurrence.lowerTriangular(weight: input.denseWeights(), bias: nil, decay: decay, steps: steps, lastOnly: false)
        OperatorChecker.check(scan, dense: w, bias: nil, rowCounts: [1, 2], random: &random, "scan over nm 2:4")
    }
}
