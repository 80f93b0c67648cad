import CSparseKernels
import Foundation
import XCTest
import SparseKernels

/// The second-order compression kernels (obs.c): Gram accumulation, the inverse-Hessian factor and
/// the SparseGPT sweep, against plain double references and brute-force least squares.
final class OBSKernelTests: XCTestCase {
    /// H = X^T X (upper triangle, split into row ranges) and a cross term A^T B, on every ISA, odd sizes.
    func testGramMatchesDoubleSum() {
        var random = TestRandom(seed: 41)
        for (tokens, cols, colsB) in [(1, 1, 1), (70, 13, 37), (130, 40, 40), (64, 33, 5)] {
            let a = random.array(tokens * cols), b = random.array(tokens * colsB)
            for isa in InstructionSet.available {
                var full = [Double](repeating: 0.5, count: cols * colsB)
                XCTAssertEqual(ss_gram_accumulate(isa.cValue, a, cols, b, colsB, tokens, colsB, 0, cols, 0, &full, colsB), SS_OK)
                var upper = [Double](repeating: 0, count: cols * cols)
                for (begin, end) in [(0, cols / 3), (cols / 3, cols)] {
                    XCTAssertEqual(ss_gram_accumulate(isa.cValue, a, cols, a, cols, tokens, cols, begin, end, 1, &upper, cols), SS_OK)
                }
                ss_gram_mirror(&upper, cols)
                for i in 0..<cols {
                    for j in 0..<colsB {
                        let cross = (0..<tokens).reduce(0.5) { $0 + Double(a[$1 * cols + i]) * Double(b[$1 * colsB + j]) }
                        XCTAssertEqual(full[i * colsB + j], cross, accuracy: 1e-5 * Double(tokens), "\(isa) cross \(i),\(j)")
                    }
                    for j in 0..<cols {
                        let gram = (0..<tokens).reduce(0.0) { $0 + Double(a[$1 * cols + i]) * Double(a[$1 * cols + j]) }
                        XCTAssertEqual(upper[i * cols + j], gram, accuracy: 1e-5 * Double(tokens), "\(isa) gram \(i),\(j)")
                    }
                }
            }
        }
    }

    /// U from ss_obs_prepare is upper triangular with U^T U = (H + damping)^-1; a dead input gets H_jj = 1.
    func testPrepareGivesUpperFactorOfInverse() {
        var random = TestRandom(seed: 42)
        let (tokens, n) = (40, 12)
        var x = random.array(tokens * n)
        for t in 0..<tokens { x[t * n + 5] = 0 }                       // input 5 is dead
        var h = Self.gram(x, tokens: tokens, cols: n)
        var damped = h
        var dead = [UInt8](repeating: 9, count: n)
        let mean = (0..<n).reduce(0.0) { $0 + ($1 == 5 ? 1 : h[$1 * n + $1]) } / Double(n)
        for j in 0..<n { damped[j * n + j] = (j == 5 ? 1 : damped[j * n + j]) + 0.01 * mean }
        XCTAssertEqual(ss_obs_prepare(&h, n, 0.01, &dead), SS_OK)
        XCTAssertEqual(dead, (0..<n).map { $0 == 5 ? 1 : 0 })
        for i in 0..<n {
            for j in 0..<i { XCTAssertEqual(h[i * n + j], 0, "lower entry \(i),\(j)") }
        }
        for i in 0..<n {                                                   // (U^T U) H = I
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n {
                    let inv = (0..<n).reduce(0.0) { $0 + h[$1 * n + i] * h[$1 * n + k] }
                    s += inv * damped[k * n + j]
                }
                XCTAssertEqual(s, i == j ? 1 : 0, accuracy: 1e-9, "\(i),\(j)")
            }
        }
        var bad = [Double](repeating: .nan, count: 4)
        XCTAssertEqual(ss_obs_prepare(&bad, 2, 0.01, &dead), SS_ERR_ARGUMENT)
    }

    /// With every pruned column before every kept one (per row), the sweep is exact: it equals the
    /// brute-force least-squares optimum min (w - ŵ) H (w - ŵ)^T over the kept weights. Crosses lazy
    /// blocks (block 4, 12 columns) and includes pruning a single weight (the textbook OBS step).
    func testFixedMaskSweepEqualsBruteForceLeastSquares() {
        var random = TestRandom(seed: 43)
        let (tokens, n) = (60, 12)
        let x = random.array(tokens * n)
        let h = Self.gram(x, tokens: tokens, cols: n)
        let prunedPrefix = [1, 6, 3]                       // row r prunes columns 0..<prunedPrefix[r]
        let w = random.array(prunedPrefix.count * n)
        for isa in InstructionSet.available {
            var u = h, dead = [UInt8](repeating: 0, count: n)
            XCTAssertEqual(ss_obs_prepare(&u, n, 0, &dead), SS_OK)
            var mask = prunedPrefix.flatMap { k in (0..<n).map { UInt8($0 >= k ? 1 : 0) } }
            var out = w
            var params = ss_obs_params(n: 1, m: 1, block: 4, fixed_mask: 1)
            XCTAssertEqual(ss_obs_prune(isa.cValue, &params, u, n, nil, &out, n, 0, prunedPrefix.count, &mask), SS_OK)
            for (r, k) in prunedPrefix.enumerated() {
                let best = Self.leastSquares(h: h, w: Array(w[r * n..<(r + 1) * n]).map(Double.init), kept: Array(k..<n))
                for c in 0..<n {
                    XCTAssertEqual(Double(out[r * n + c]), best[c], accuracy: 1e-4 * max(1, abs(best[c])), "\(isa) row \(r) col \(c)")
                }
            }
        }
    }

    /// The N:M sweep (mask chosen on updated weights, lazy blocks) equals an eager double port of
    /// the reference algorithm on every ISA, and keeps exactly n of every m per row.
    func testNMSweepMatchesEagerReference() {
        var random = TestRandom(seed: 44)
        for (n, m, block, cols, rows) in [(2, 4, 4, 24, 5), (2, 4, 8, 24, 9), (4, 8, 16, 48, 3), (1, 4, 128, 20, 4)] {
            let tokens = 3 * cols
            let h = Self.gram(random.array(tokens * cols), tokens: tokens, cols: cols)
            let w = random.array(rows * cols)
            var u = h, dead = [UInt8](repeating: 0, count: cols)
            XCTAssertEqual(ss_obs_prepare(&u, cols, 0.01, &dead), SS_OK)
            let (expected, expectedMask) = Self.eagerSweep(w: w.map(Double.init), u: u, rows: rows, cols: cols, n: n, m: m)
            for isa in InstructionSet.available {
                var out = w, mask = [UInt8](repeating: 7, count: rows * cols)
                var params = ss_obs_params(n: Int32(n), m: Int32(m), block: block, fixed_mask: 0)
                XCTAssertEqual(ss_obs_prune(isa.cValue, &params, u, cols, nil, &out, cols, 0, rows, &mask), SS_OK)
                XCTAssertEqual(mask, expectedMask, "\(isa) \(n):\(m) block \(block)")
                for i in 0..<rows * cols {
                    XCTAssertEqual(Double(out[i]), expected[i], accuracy: 1e-4 * max(1, abs(expected[i])), "\(isa) \(n):\(m) entry \(i)")
                    if mask[i] == 0 { XCTAssertEqual(out[i], 0) }
                }
                for r in 0..<rows {
                    for g in stride(from: 0, to: cols, by: m) {
                        XCTAssertEqual(mask[(r * cols + g)..<(r * cols + g + m)].reduce(0) { $0 + Int($1) }, n)
                    }
                }
            }
        }
        var params = ss_obs_params(n: 2, m: 4, block: 6, fixed_mask: 0)   // block not a multiple of m
        var w = [Float](repeating: 1, count: 8), mask = [UInt8](repeating: 0, count: 8), u = [Double](repeating: 0, count: 64)
        XCTAssertEqual(ss_obs_prune(SS_ISA_PORTABLE, &params, &u, 8, nil, &w, 8, 0, 1, &mask), SS_ERR_ARGUMENT)
    }

    // MARK: - GPTQ (int8 rounding in the sweep)

    /// The quantizing sweep equals an eager double port of GPTQ on every ISA (channel and group
    /// scales, a fixed mask, a free last column, lazy blocks crossed, odd sizes): values within
    /// −127…127, w = q · scale in the rounded columns, 0 where pruned.
    func testQuantizingSweepMatchesEagerReference() {
        var random = TestRandom(seed: 45)
        for (rows, cols, group, free, masked) in [(5, 13, 0, 0, false), (9, 300, 64, 0, false), (4, 37, 8, 1, true), (3, 130, 0, 1, true)] {
            let tokens = 2 * cols
            let h = Self.gram(random.array(tokens * cols), tokens: tokens, cols: cols)
            let w = random.array(rows * cols).map { $0 * 3 }
            let mask: [UInt8]? = masked ? (0..<rows * cols).map { UInt8(($0 * 7) % 3 == 0 ? 0 : 1) } : nil
            var u = h, dead = [UInt8](repeating: 0, count: cols)
            XCTAssertEqual(ss_obs_prepare(&u, cols, 0.01, &dead), SS_OK)
            let expected = Self.eagerQuantize(w: w.map(Double.init), u: u, rows: rows, cols: cols, group: group, free: free, mask: mask)
            for isa in InstructionSet.available {
                var out = w
                let qcols = cols - free, groups = group == 0 ? 1 : (qcols + group - 1) / group
                var q = [Int8](repeating: 99, count: rows * qcols), scales = [Float](repeating: -1, count: rows * groups)
                let status = (mask ?? []).withUnsafeBufferPointer { mk in
                    var params = ss_obs_quant_params(group: group, free_cols: free, mask: mask == nil ? nil : mk.baseAddress)
                    XCTAssertEqual(ss_obs_quant_groups(&params, cols), groups)
                    return ss_obs_quantize(isa.cValue, &params, u, cols, nil, &out, cols, 0, rows, &q, qcols, &scales)
                }
                XCTAssertEqual(status, SS_OK)
                for r in 0..<rows {
                    for c in 0..<cols {
                        let i = r * cols + c, tag = "\(isa) \(rows)x\(cols) group \(group) row \(r) col \(c)"
                        XCTAssertEqual(Double(out[i]), expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), tag)
                        guard c < qcols else { continue }
                        let scale = scales[r * groups + (group == 0 ? 0 : c / group)]
                        XCTAssertTrue((-127...127).contains(Int(q[r * qcols + c])), tag)
                        XCTAssertEqual(out[i], Float(Double(q[r * qcols + c]) * Double(scale)), tag)
                        if mask?[i] == 0 { XCTAssertEqual(q[r * qcols + c], 0, tag) }
                    }
                }
            }
        }
        var params = ss_obs_quant_params(group: 0, free_cols: 4, mask: nil)   // nothing left to round
        var w = [Float](repeating: 1, count: 4), q = [Int8](repeating: 0, count: 4), scales = [Float](repeating: 0, count: 1)
        XCTAssertEqual(ss_obs_quantize(SS_ISA_PORTABLE, &params, [Double](repeating: 1, count: 16), 4, nil, &w, 4, 0, 1, &q, 4, &scales),
                       SS_ERR_ARGUMENT)
    }

    /// With uncorrelated inputs (diagonal H) nothing is compensated: GPTQ is round-to-nearest,
    /// value for value and scale for scale (`ss_int8_quantize_weights`).
    func testQuantizingSweepWithDiagonalHessianIsRoundToNearest() {
        var random = TestRandom(seed: 46)
        let (rows, cols) = (6, 70)
        var u = [Double](repeating: 0, count: cols * cols), dead = [UInt8](repeating: 0, count: cols)
        for j in 0..<cols { u[j * cols + j] = Double(1 + j % 5) }
        XCTAssertEqual(ss_obs_prepare(&u, cols, 0, &dead), SS_OK)
        let w = random.array(rows * cols)
        for group in [0, 32] {
            var rq = [Int8](repeating: 0, count: rows * cols), rs = [Float](repeating: 0, count: rows * (group == 0 ? 1 : 3))
            XCTAssertEqual(ss_int8_quantize_weights(w, rows, cols, cols, group, &rq, &rs), 0)
            var out = w, q = rq.map { _ in Int8(0) }, scales = rs.map { _ in Float(0) }
            var params = ss_obs_quant_params(group: group, free_cols: 0, mask: nil)
            XCTAssertEqual(ss_obs_quantize(SS_ISA_PORTABLE, &params, u, cols, nil, &out, cols, 0, rows, &q, cols, &scales), SS_OK)
            XCTAssertEqual(q, rq, "group \(group)")
            for (a, b) in zip(scales, rs) { XCTAssertEqual(a, b, accuracy: 1e-7 * b, "group \(group)") }
        }
    }

    /// GPTQ without lazy blocks, in double: per row, scales as the kernel sets them, each rounded
    /// (or pruned) weight's error onto every later column through row i of U.
    static func eagerQuantize(w: [Double], u: [Double], rows: Int, cols: Int, group: Int, free: Int, mask: [UInt8]?) -> [Double] {
        var w = w
        let qcols = cols - free
        func scale(_ r: Int, _ range: Range<Int>) -> Double {
            let a = range.filter { mask?[r * cols + $0] ?? 1 != 0 }.map { abs(w[r * cols + $0]) }.max() ?? 0
            let s = Double(Float(a / 127))
            return s > 0 ? s : 1
        }
        for r in 0..<rows {
            var s = group == 0 ? scale(r, 0..<qcols) : 0
            for i in 0..<cols {
                if group > 0, i < qcols, i % group == 0 { s = scale(r, i..<min(i + group, qcols)) }
                let target: Double
                if i >= qcols { target = w[r * cols + i] } else if mask?[r * cols + i] == 0 { target = 0 } else {
                    target = min(127, max(-127, (w[r * cols + i] / s).rounded(.toNearestOrEven))) * s
                }
                let e = (w[r * cols + i] - target) / u[i * cols + i]
                for j in i..<cols { w[r * cols + j] -= e * u[i * cols + j] }
                w[r * cols + i] = target
            }
        }
        return w
    }

    // MARK: - references

    static func gram(_ x: [Float], tokens: Int, cols: Int) -> [Double] {
        var h = [Double](repeating: 0, count: cols * cols)
        for t in 0..<tokens {
            for i in 0..<cols { for j in 0..<cols { h[i * cols + j] += Double(x[t * cols + i]) * Double(x[t * cols + j]) } }
        }
        return h
    }

    /// argmin over ŵ with ŵ_j = 0 off `kept` of (w - ŵ) H (w - ŵ)^T: H_SS ŵ_S = (H w)_S, by Gaussian elimination.
    static func leastSquares(h: [Double], w: [Double], kept: [Int]) -> [Double] {
        let n = w.count, s = kept.count
        var a = [Double](repeating: 0, count: s * (s + 1))
        for (p, i) in kept.enumerated() {
            for (q, j) in kept.enumerated() { a[p * (s + 1) + q] = h[i * n + j] }
            a[p * (s + 1) + s] = (0..<n).reduce(0.0) { $0 + h[i * n + $1] * w[$1] }
        }
        for p in 0..<s {
            let pivot = (p..<s).max { abs(a[$0 * (s + 1) + p]) < abs(a[$1 * (s + 1) + p]) }!
            for q in 0...s { a.swapAt(p * (s + 1) + q, pivot * (s + 1) + q) }
            for r in 0..<s where r != p {
                let f = a[r * (s + 1) + p] / a[p * (s + 1) + p]
                for q in 0...s { a[r * (s + 1) + q] -= f * a[p * (s + 1) + q] }
            }
        }
        var out = [Double](repeating: 0, count: n)
        for (p, i) in kept.enumerated() { out[i] = a[p * (s + 1) + s] / a[p * (s + 1) + p] }
        return out
    }

    /// The sweep without lazy blocks: after each column, its error updates every later column at once.
    static func eagerSweep(w: [Double], u: [Double], rows: Int, cols: Int, n: Int, m: Int) -> ([Double], [UInt8]) {
        var w = w, mask = [UInt8](repeating: 1, count: rows * cols)
        for r in 0..<rows {
            for i in 0..<cols {
                if i % m == 0 {
                    let scores = (0..<m).map { k in pow(w[r * cols + i + k], 2) / pow(u[(i + k) * cols + i + k], 2) }
                    let order = (0..<m).sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
                    for k in order.prefix(m - n) { mask[r * cols + i + k] = 0 }
                }
                guard mask[r * cols + i] == 0 else { continue }
                let e = w[r * cols + i] / u[i * cols + i]
                for j in i..<cols { w[r * cols + j] -= e * u[i * cols + j] }
                w[r * cols + i] = 0
            }
        }
        return (w, mask)
    }
}
