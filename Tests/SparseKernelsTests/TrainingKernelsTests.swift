import Foundation
import XCTest
@testable import SparseKernels
import CSparseKernels

/// Training kernels against float64 references and finite differences, on every instruction set.
final class TrainingKernelsTests: XCTestCase {
    private func random(_ count: Int, _ rng: inout TestRandom, scale: Float = 1) -> [Float] {
        rng.array(count).map { scale * $0 }
    }

    /// Every transpose combination, sizes with edge tiles on each ISA, alpha/beta, a column range,
    /// and beta = 0 ignoring NaN already in C.
    func testGemmMatchesDoubleReference() {
        var rng = TestRandom(seed: 11)
        let shapes = [(1, 1, 1), (13, 37, 5), (97, 33, 300), (12, 32, 256), (7, 1100, 19), (200, 70, 513)]
        for isa in InstructionSet.available {
            for (m, n, k) in shapes {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let a = random(m * k, &rng), b = random(k * n, &rng), c0 = random(m * n, &rng)
                    for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                        var c = beta == 0 ? [Float](repeating: .nan, count: m * n) : c0
                        let (lda, ldb) = (ta ? m : k, tb ? k : n)
                        a.withUnsafeBufferPointer { pa in
                            b.withUnsafeBufferPointer { pb in
                                c.withUnsafeMutableBufferPointer { pc in
                                    TrainingKernels.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                                         b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: n, isa: isa)
                                }
                            }
                        }
                        var worst = 0.0
                        for i in 0..<m {
                            for j in 0..<n {
                                var s = 0.0
                                for kk in 0..<k {
                                    let av = ta ? a[kk * m + i] : a[i * k + kk], bv = tb ? b[j * k + kk] : b[kk * n + j]
                                    s += Double(av) * Double(bv)
                                }
                                let want = Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c0[i * n + j]))
                                worst = max(worst, abs(Double(c[i * n + j]) - want) / (1 + abs(want)))
                            }
                        }
                        XCTAssertLessThan(worst, 1e-5 * Double(max(1, k / 64)), "\(isa) m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb) alpha=\(alpha) beta=\(beta)")
                    }
                }
            }
        }
    }

    /// A column range writes exactly those columns; an invalid range writes nothing.
    func testGemmColumnRange() {
        var rng = TestRandom(seed: 5)
        let (m, n, k) = (9, 80, 7)
        let a = random(m * k, &rng), b = random(n * k, &rng)
        for isa in InstructionSet.available {
            var c = [Float](repeating: 7, count: m * n)
            let status = ss_train_gemm_isa(isa.cValue, 0, 1, m, n, k, 1, a, k, b, k, 0, &c, n, 32, 64)
            XCTAssertEqual(status, SS_OK)
            for i in 0..<m {
                for j in 0..<n where j < 32 || j >= 64 { XCTAssertEqual(c[i * n + j], 7, "\(isa) wrote outside the range at (\(i), \(j))") }
                XCTAssertNotEqual(c[i * n + 40], 7)
            }
            XCTAssertEqual(ss_train_gemm_isa(isa.cValue, 0, 1, m, n, k, 1, a, k, b, k, 0, &c, n, 10, 90), SS_ERR_ARGUMENT)
        }
    }

    private func gelu(_ x: Double) -> Double { 0.5 * x * erfc(-x / 2.0.squareRoot()) }

    /// ReLU and GELU backward against central finite differences of the float64 functions, with
    /// lengths that leave vector tails and GELU chunks.
    func testActivationBackwardMatchesFiniteDifferences() {
        var rng = TestRandom(seed: 3)
        let count = 1_100
        var x = random(count, &rng, scale: 6)
        x[0] = 0; x[1] = 1e-4; x[2] = -1e-4; x[3] = -30; x[4] = 30
        let dy = random(count, &rng)
        for isa in InstructionSet.available {
            for act in [Activation.none, .relu, .gelu] {
                var dx = [Float](repeating: .nan, count: count)
                TrainingKernels.activationBackward(act, x: x, dy: dy, dx: &dx, count: count, isa: isa)
                for i in 0..<count {
                    let xv = Double(x[i]), h = 1e-5
                    let f: (Double) -> Double = act == .gelu ? gelu : act == .relu ? { max(0, $0) } : { $0 }
                    let derivative = act == .relu ? (xv > 0 ? 1 : 0) : (f(xv + h) - f(xv - h)) / (2 * h)
                    XCTAssertEqual(Double(dx[i]), Double(dy[i]) * derivative, accuracy: 2e-6 * (1 + abs(Double(dy[i]))),
                                   "\(isa) \(act) at x=\(x[i])")
                }
            }
        }
        XCTAssertFalse(TrainingKernels.hasBackward(.tanh))
    }

    func testColumnSums() {
        var rng = TestRandom(seed: 4)
        let (rows, cols, ld) = (37, 45, 50)
        let dy = random(rows * ld, &rng)
        for isa in InstructionSet.available {
            var db = [Float](repeating: 1, count: cols)
            TrainingKernels.columnSums(dy, rows: rows, cols: cols, ld: ld, into: &db, isa: isa)
            for j in 0..<cols {
                let want = 1 + (0..<rows).reduce(0.0) { $0 + Double(dy[$1 * ld + j]) }
                XCTAssertEqual(Double(db[j]), want, accuracy: 1e-5, "\(isa) column \(j)")
            }
        }
    }

    /// Three AdamW steps against a float64 loop; masked elements keep value and moments exactly.
    func testMaskedAdamMatchesReference() {
        var rng = TestRandom(seed: 9)
        let count = 77
        let config = TrainingKernels.Adam(learningRate: 0.01, weightDecay: 0.1)
        let mask = (0..<count).map { UInt8($0 % 3 == 0 ? 0 : 1) }
        let p0 = random(count, &rng), grads = (0..<3).map { _ in random(count, &rng) }
        for isa in InstructionSet.available {
            var p = p0, m = [Float](repeating: 0, count: count), v = m
            var rp = p0.map(Double.init), rm = [Double](repeating: 0, count: count), rv = rm
            for (t, g) in grads.enumerated() {
                TrainingKernels.adam(config, step: t + 1, parameters: &p, gradient: g, m: &m, v: &v, mask: mask, count: count, isa: isa)
                for i in 0..<count where mask[i] == 1 {
                    let gd = Double(g[i])
                    rm[i] = 0.9 * rm[i] + 0.1 * gd
                    rv[i] = 0.999 * rv[i] + 0.001 * gd * gd
                    let mh = rm[i] / (1 - pow(0.9, Double(t + 1))), vh = rv[i] / (1 - pow(0.999, Double(t + 1)))
                    rp[i] -= 0.01 * (mh / (vh.squareRoot() + 1e-8) + 0.1 * rp[i])
                }
            }
            for i in 0..<count {
                if mask[i] == 0 {
                    XCTAssertEqual(p[i].bitPattern, p0[i].bitPattern, "\(isa) masked element \(i) changed")
                    XCTAssertEqual(m[i], 0)
                    XCTAssertEqual(v[i], 0)
                } else {
                    XCTAssertEqual(Double(p[i]), rp[i], accuracy: 1e-5, "\(isa) element \(i)")
                }
            }
        }
    }

    func testSumOfSquaresAndScale() {
        var rng = TestRandom(seed: 2)
        let x = random(10_003, &rng)
        let want = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        for isa in InstructionSet.available {
            XCTAssertEqual(TrainingKernels.sumOfSquares(x, count: x.count, isa: isa), want, accuracy: 1e-6 * want)
            var y = x
            TrainingKernels.scale(&y, count: y.count, by: -0.5, isa: isa)
            XCTAssertEqual(y[10_002], -0.5 * x[10_002])
            y[5000] = .nan
            XCTAssertTrue(TrainingKernels.sumOfSquares(y, count: y.count, isa: isa).isNaN)
        }
    }

    /// The distillation loss's gradient against central differences of the loss itself (labels
    /// and teacher, each alone), and a label out of range refused.
    func testDistillationLossGradient() {
        var rng = TestRandom(seed: 8)
        let (rows, cols) = (5, 7)
        let s = random(rows * cols, &rng, scale: 3), t = random(rows * cols, &rng, scale: 3)
        let labels: [Int32] = [0, 6, 3, 3, 1]
        for (useLabels, useTeacher) in [(true, true), (true, false), (false, true)] {
            func loss(_ logits: [Float], _ grad: inout [Float]) -> Double {
                logits.withUnsafeBufferPointer { pl in
                    t.withUnsafeBufferPointer { pt in
                        labels.withUnsafeBufferPointer { py in
                            TrainingKernels.distillationLoss(logits: pl.baseAddress!, teacher: useTeacher ? pt.baseAddress : nil,
                                                             labels: useLabels ? py.baseAddress : nil, rows: rows, cols: cols,
                                                             alpha: 0.6, temperature: 2, gradient: &grad)!
                        }
                    }
                }
            }
            var grad = [Float](repeating: 0, count: rows * cols), scratch = grad
            _ = loss(s, &grad)
            for i in [0, 8, 20, 34] {
                var plus = s, minus = s
                plus[i] += 1e-2
                minus[i] -= 1e-2
                let numeric = (loss(plus, &scratch) - loss(minus, &scratch)) / 2e-2
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 2e-4, "labels=\(useLabels) teacher=\(useTeacher) logit \(i)")
            }
        }
        var grad = [Float](repeating: 0, count: rows * cols)
        XCTAssertNil(TrainingKernels.distillationLoss(logits: s, teacher: nil, labels: [0, 7, 0, 0, 0], rows: rows, cols: cols,
                                                      alpha: 0, temperature: 1, gradient: &grad))
    }

    func testMeanSquaredErrorGradient() {
        let p: [Float] = [1, 2, 3, 4], t: [Float] = [0, 2, 5, 4]
        var grad = [Float](repeating: 0, count: 4)
        let loss = TrainingKernels.meanSquaredError(p, target: t, rows: 2, cols: 2, scale: 3, gradient: &grad)
        XCTAssertEqual(loss, 3 * (1 + 4) / 2, accuracy: 1e-12)
        XCTAssertEqual(grad, [3, 0, -6, 0])
    }

    /// Layer norm backward (with gamma, dgamma, dbeta) against central differences of a float64
    /// layer norm, on widths with vector tails.
    func testLayerNormBackwardMatchesFiniteDifferences() {
        var rng = TestRandom(seed: 21)
        for cols in [5, 37, 384] {
            let rows = 3, eps: Float = 1e-5
            let x = random(rows * cols, &rng, scale: 2), dy = random(rows * cols, &rng), gamma = random(cols, &rng).map { 1 + 0.5 * $0 }
            func loss(_ x: [Double], _ gamma: [Double]) -> Double {
                var total = 0.0
                for r in 0..<rows {
                    let row = x[r * cols ..< (r + 1) * cols]
                    let mean = row.reduce(0, +) / Double(cols)
                    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(cols)
                    for j in 0..<cols { total += Double(dy[r * cols + j]) * (x[r * cols + j] - mean) / (variance + Double(eps)).squareRoot() * gamma[j] }
                }
                return total
            }
            let xd = x.map(Double.init), gd = gamma.map(Double.init)
            for isa in InstructionSet.available {
                var dx = [Float](repeating: 0, count: rows * cols), dgamma = [Float](repeating: 0, count: cols), dbeta = dgamma
                TrainingKernels.layerNormBackward(x: x, dy: dy, dx: &dx, rows: rows, cols: cols, gamma: gamma, epsilon: eps, dgamma: &dgamma, dbeta: &dbeta, isa: isa)
                for i in stride(from: 0, to: rows * cols, by: max(1, rows * cols / 17)) {
                    var plus = xd, minus = xd
                    plus[i] += 1e-6
                    minus[i] -= 1e-6
                    XCTAssertEqual(Double(dx[i]), (loss(plus, gd) - loss(minus, gd)) / 2e-6, accuracy: 1e-3, "\(isa) cols=\(cols) dx[\(i)]")
                }
                for j in stride(from: 0, to: cols, by: max(1, cols / 7)) {
                    var plus = gd, minus = gd
                    plus[j] += 1e-6
                    minus[j] -= 1e-6
                    XCTAssertEqual(Double(dgamma[j]), (loss(xd, plus) - loss(xd, minus)) / 2e-6, accuracy: 1e-3, "\(isa) cols=\(cols) dgamma[\(j)]")
                    XCTAssertEqual(Double(dbeta[j]), (0..<rows).reduce(0.0) { $0 + Double(dy[$1 * cols + j]) }, accuracy: 1e-5)
                }
            }
        }
    }

    /// Softmax backward against the Jacobian-vector product of a float64 softmax.
    func testSoftmaxBackward() {
        var rng = TestRandom(seed: 22)
        for cols in [3, 16, 45] {
            let rows = 4, s = random(rows * cols, &rng, scale: 4), dp = random(rows * cols, &rng)
            var p = s
            for r in 0..<rows {
                let row = s[r * cols ..< (r + 1) * cols].map(Double.init), mx = row.max()!
                let e = row.map { Foundation.exp($0 - mx) }, z = e.reduce(0, +)
                for j in 0..<cols { p[r * cols + j] = Float(e[j] / z) }
            }
            for isa in InstructionSet.available {
                var ds = [Float](repeating: .nan, count: rows * cols)
                TrainingKernels.softmaxBackward(p: p, dp: dp, ds: &ds, rows: rows, cols: cols, isa: isa)
                for r in 0..<rows {
                    let pdp = (0..<cols).reduce(0.0) { $0 + Double(p[r * cols + $1]) * Double(dp[r * cols + $1]) }
                    for j in 0..<cols {
                        let want = Double(p[r * cols + j]) * (Double(dp[r * cols + j]) - pdp)
                        XCTAssertEqual(Double(ds[r * cols + j]), want, accuracy: 1e-6, "\(isa) cols=\(cols)")
                    }
                }
            }
        }
    }
}
