import Foundation
import SparseKernels

/// Fits BLAST factors to a dense weight by preconditioned gradient descent (algorithms.md §1.3):
/// every outer step updates all U_i, then all V_j, then all s_ij, each from a fresh residual, with
/// the ½-loss, step η = 1 and damping ε = δ‖A − Â‖_F (a damped block Gauss–Newton step).
/// A is scaled to unit standard deviation for the fit and the scale is folded back into s.
public struct BlastFactorization: Sendable {
    public let rows: Int, columns: Int
    public let rowBlocks: Int, columnBlocks: Int, rank: Int
    /// U_i (rows/b1 × r), V_j (columns/b2 × r), s_ij (r), row-major, concatenated.
    public private(set) var u: [Double], v: [Double], s: [Double]
    /// ‖A − Â‖_F / ‖A‖_F after the last step.
    public private(set) var relativeError: Double

    public enum FitError: Error, CustomStringConvertible {
        case shape(String)
        public var description: String { switch self { case .shape(let s): return s } }
    }

    /// - Parameters: `a` is rows × columns, row-major.
    public init(fitting a: [Float], rows m: Int, columns n: Int, rowBlocks b1: Int, columnBlocks b2: Int, rank r: Int,
                iterations: Int = 100, delta: Double = 0.1, seed: UInt64 = 1) throws {
        guard b1 >= 1, b2 >= 1, r >= 1, m % b1 == 0, n % b2 == 0 else {
            throw FitError.shape("BLAST needs \(m) rows divisible by \(b1) blocks and \(n) columns by \(b2) blocks, rank ≥ 1")
        }
        rows = m; columns = n; rowBlocks = b1; columnBlocks = b2; rank = r
        let p = m / b1, q = n / b2
        // Scale A to unit standard deviation.
        let mean = a.reduce(0.0) { $0 + Double($1) } / Double(a.count)
        let std = max(1e-12, (a.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(a.count)).squareRoot())
        let scaled = a.map { Double($0) / std }
        // Blocks A_ij as separate p × q matrices.
        var blocks = [[Double]](repeating: [], count: b1 * b2)
        for i in 0..<b1 { for j in 0..<b2 {
            var blk = [Double](repeating: 0, count: p * q)
            for x in 0..<p { for y in 0..<q { blk[x * q + y] = scaled[(i * p + x) * n + j * q + y] } }
            blocks[i * b2 + j] = blk
        } }
        var rng = SplitMix(seed: seed)
        u = (0..<(b1 * p * r)).map { _ in rng.normal() / Double(r).squareRoot() * 1e-3 }
        v = (0..<(b2 * q * r)).map { _ in rng.normal() / Double(r).squareRoot() * 1e-3 }
        s = (0..<(b1 * b2 * r)).map { _ in rng.normal() }
        let norm = scaled.reduce(0) { $0 + $1 * $1 }.squareRoot()
        relativeError = 1

        func uBlock(_ i: Int) -> [Double] { Array(u[(i * p * r)..<((i + 1) * p * r)]) }
        func vBlock(_ j: Int) -> [Double] { Array(v[(j * q * r)..<((j + 1) * q * r)]) }
        func sBlock(_ i: Int, _ j: Int) -> [Double] { Array(s[((i * b2 + j) * r)..<((i * b2 + j + 1) * r)]) }
        /// R_ij = A_ij − U_i diag(s_ij) V_jᵀ.
        func residual(_ i: Int, _ j: Int) -> [Double] {
            let us = Dense.scaleColumns(uBlock(i), rows: p, cols: r, by: sBlock(i, j))
            let approx = Dense.multiplyTransposed(us, p, r, vBlock(j), q)  // p × q
            return zip(blocks[i * b2 + j], approx).map { $0 - $1 }
        }
        func totalError() -> Double {
            var e = 0.0
            for i in 0..<b1 { for j in 0..<b2 { e += residual(i, j).reduce(0) { $0 + $1 * $1 } } }
            return e.squareRoot()
        }

        for _ in 0..<iterations {
            let eps = delta * totalError()
            // U step: U_i += (Σ_j R_ij V_j S_ij) (Σ_j S_ij V_jᵀ V_j S_ij + εI)⁻¹
            for i in 0..<b1 {
                var grad = [Double](repeating: 0, count: p * r)
                var pre = Dense.identity(r, scale: eps)
                for j in 0..<b2 {
                    let vs = Dense.scaleColumns(vBlock(j), rows: q, cols: r, by: sBlock(i, j))  // q × r
                    Dense.addInPlace(&grad, Dense.multiply(residual(i, j), p, q, vs, r))
                    Dense.addInPlace(&pre, Dense.gram(vs, rows: q, cols: r))
                }
                let step = Dense.solveRight(grad, rows: p, pre, r)
                for k in 0..<(p * r) { u[i * p * r + k] += step[k] }
            }
            // V step: V_j += (Σ_i R_ijᵀ U_i S_ij) (Σ_i S_ij U_iᵀ U_i S_ij + εI)⁻¹
            for j in 0..<b2 {
                var grad = [Double](repeating: 0, count: q * r)
                var pre = Dense.identity(r, scale: eps)
                for i in 0..<b1 {
                    let us = Dense.scaleColumns(uBlock(i), rows: p, cols: r, by: sBlock(i, j))  // p × r
                    Dense.addInPlace(&grad, Dense.multiply(Dense.transpose(residual(i, j), p, q), q, p, us, r))
                    Dense.addInPlace(&pre, Dense.gram(us, rows: p, cols: r))
                }
                let step = Dense.solveRight(grad, rows: q, pre, r)
                for k in 0..<(q * r) { v[j * q * r + k] += step[k] }
            }
            // s step: s_ij += ((U_iᵀU_i) ⊙ (V_jᵀV_j) + εI)⁻¹ diag(U_iᵀ R_ij V_j)
            for i in 0..<b1 {
                let gu = Dense.gram(uBlock(i), rows: p, cols: r)
                for j in 0..<b2 {
                    let gv = Dense.gram(vBlock(j), rows: q, cols: r)
                    var pre = zip(gu, gv).map { $0 * $1 }
                    for k in 0..<r { pre[k * r + k] += eps }
                    let rv = Dense.multiply(residual(i, j), p, q, vBlock(j), r)  // p × r
                    let ub = uBlock(i)
                    var g = [Double](repeating: 0, count: r)
                    for x in 0..<p { for k in 0..<r { g[k] += ub[x * r + k] * rv[x * r + k] } }
                    let step = Dense.solveRight(g, rows: 1, pre, r)
                    for k in 0..<r { s[(i * b2 + j) * r + k] += step[k] }
                }
            }
        }
        relativeError = norm > 0 ? totalError() / norm : 0
        s = s.map { $0 * std }
        // the mean was not removed (only the scale), so nothing else to fold back
        _ = mean
    }

    /// The factors as a runnable BLAST operator.
    public func makeOperator(bias: [Float]?) throws -> BlastWeights {
        try BlastWeights(u: u.map(Float.init), v: v.map(Float.init), s: s.map(Float.init), outputFeatures: rows,
                         inputFeatures: columns, rowBlocks: rowBlocks, columnBlocks: columnBlocks, rank: rank, bias: bias)
    }

    /// The rank that gives `ratio` of the dense parameter count with b1 × b2 blocks.
    public static func rank(rows m: Int, columns n: Int, rowBlocks b1: Int, columnBlocks b2: Int, parameterRatio ratio: Double) -> Int {
        max(1, Int(ratio * Double(m * n) / Double(m + n + b1 * b2)))
    }
}

/// Small dense double-precision helpers for the factorisation (row-major).
enum Dense {
    static func identity(_ r: Int, scale: Double) -> [Double] {
        var out = [Double](repeating: 0, count: r * r)
        for k in 0..<r { out[k * r + k] = scale }
        return out
    }

    static func addInPlace(_ a: inout [Double], _ b: [Double]) { for k in a.indices { a[k] += b[k] } }

    static func transpose(_ a: [Double], _ rows: Int, _ cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: a.count)
        for x in 0..<rows { for y in 0..<cols { out[y * rows + x] = a[x * cols + y] } }
        return out
    }

    static func scaleColumns(_ a: [Double], rows: Int, cols: Int, by d: [Double]) -> [Double] {
        var out = a
        for x in 0..<rows { for k in 0..<cols { out[x * cols + k] *= d[k] } }
        return out
    }

    /// (a × k) · (k × c)
    static func multiply(_ a: [Double], _ rows: Int, _ inner: Int, _ b: [Double], _ cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
            for x in 0..<rows {
                for k in 0..<inner {
                    let av = ap[x * inner + k]
                    if av == 0 { continue }
                    let brow = k * cols, orow = x * cols
                    for y in 0..<cols { op[orow + y] += av * bp[brow + y] }
                }
            }
        } } }
        return out
    }

    /// (a × r) · (c × r)ᵀ
    static func multiplyTransposed(_ a: [Double], _ rows: Int, _ r: Int, _ b: [Double], _ cols: Int) -> [Double] {
        multiply(a, rows, r, transpose(b, cols, r), cols)
    }

    /// aᵀa for an (rows × cols) matrix.
    static func gram(_ a: [Double], rows: Int, cols: Int) -> [Double] {
        multiply(transpose(a, rows, cols), cols, rows, a, cols)
    }

    /// X with X·P = G for a symmetric positive definite r × r P (Cholesky), G rows × r.
    static func solveRight(_ g: [Double], rows: Int, _ p: [Double], _ r: Int) -> [Double] {
        var l = [Double](repeating: 0, count: r * r)
        let jitter = 1e-12 * max(1e-300, (0..<r).reduce(0) { $0 + p[$1 * r + $1] } / Double(r))
        for i in 0..<r {
            for j in 0...i {
                var sum = p[i * r + j]
                for k in 0..<j { sum -= l[i * r + k] * l[j * r + k] }
                if i == j { l[i * r + i] = (max(sum, 0) + jitter).squareRoot() } else { l[i * r + j] = sum / l[j * r + j] }
            }
        }
        var out = g
        for row in 0..<rows {
            // P x = g_row (P symmetric): forward with L, back with Lᵀ.
            var y = [Double](repeating: 0, count: r)
            for i in 0..<r {
                var sum = g[row * r + i]
                for k in 0..<i { sum -= l[i * r + k] * y[k] }
                y[i] = sum / l[i * r + i]
            }
            for i in stride(from: r - 1, through: 0, by: -1) {
                var sum = y[i]
                for k in (i + 1)..<r { sum -= l[k * r + i] * out[row * r + k] }
                out[row * r + i] = sum / l[i * r + i]
            }
        }
        return out
    }
}

/// Deterministic normal samples (SplitMix64 + Box–Muller), so fits reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }
    mutating func normal() -> Double { (-2 * log(uniform())).squareRoot() * cos(2 * .pi * uniform()) }
}
