import CSparseKernels
import Foundation
import SparseKernels

/// Fits BLAST factors to a dense weight by preconditioned gradient descent (algorithms.md §1.3):
/// every outer step updates all U_i, then all V_j, then all s_ij, with the ½-loss, step η = 1 and
/// damping ε = δ‖A − Â‖_F recomputed before each of the three updates (a damped block
/// Gauss–Newton step). With η = 1 each update has a closed form:
///
///   U_i ← (Σ_j A_ij V_j S_ij + ε U_i)(Σ_j S_ij V_jᵀV_j S_ij + εI)⁻¹         (S_ij = diag(s_ij))
///   V_j ← (Σ_i A_ijᵀ U_i S_ij + ε V_j)(Σ_i S_ij U_iᵀU_i S_ij + εI)⁻¹
///   s_ij ← ((U_iᵀU_i) ⊙ (V_jᵀV_j) + εI)⁻¹ (diag(U_iᵀ A_ij V_j) + ε s_ij)
///
/// so a step needs A·V_j (every block row at once) and Aᵀ·U_i, two passes of 2·m·n·r FLOPs on
/// the fp32 GEMM kernel (split across the kernel pool), plus r×r Gram matrices and solves in
/// double. ‖A − Â‖ comes from the same products (‖A‖² − 2⟨A, Â⟩ + ‖Â‖²), and the final error
/// from a reconstruction. A is scaled to unit standard deviation for the fit and the scale is
/// folded back into s.
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
                iterations: Int = 100, delta: Double = 0.1, seed: UInt64 = 1, pool: KernelPool? = .shared) throws {
        guard b1 >= 1, b2 >= 1, r >= 1, m % b1 == 0, n % b2 == 0, a.count == m * n else {
            throw FitError.shape("BLAST needs \(m) rows divisible by \(b1) blocks and \(n) columns by \(b2) blocks, rank ≥ 1")
        }
        rows = m; columns = n; rowBlocks = b1; columnBlocks = b2; rank = r
        let p = m / b1, q = n / b2
        // Scale A to unit standard deviation; keep A and Aᵀ in fp32 for the GEMMs.
        let mean = a.reduce(0.0) { $0 + Double($1) } / Double(a.count)
        let std = max(1e-12, (a.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(a.count)).squareRoot())
        let scaled = a.map { Float(Double($0) / std) }
        var transposed = [Float](repeating: 0, count: m * n)
        for x in 0..<m { for y in 0..<n { transposed[y * m + x] = scaled[x * n + y] } }
        let normSquared = scaled.reduce(0.0) { $0 + Double($1) * Double($1) }

        var rng = SplitMix(seed: seed)
        var u = (0..<(b1 * p * r)).map { _ in rng.normal() / Double(r).squareRoot() * 1e-3 }
        var v = (0..<(b2 * q * r)).map { _ in rng.normal() / Double(r).squareRoot() * 1e-3 }
        var s = (0..<(b1 * b2 * r)).map { _ in rng.normal() }

        // AV[j] = A[:, block j] · V_j (m × r); AtU[i] = Aᵀ[:, block i] · U_i (n × r).
        var av = [Float](repeating: 0, count: b2 * m * r), atu = [Float](repeating: 0, count: b1 * n * r)
        func multiply(_ x: [Float], xOffset: Int, rows count: Int, stride: Int, byColumnsOf f: [Double], offset: Int, inner: Int,
                      into out: inout [Float], at outOffset: Int) {
            // out (count × r) = x (count × inner, row stride `stride`) · F, F = f[offset...] (inner × r)
            var w = [Float](repeating: 0, count: r * inner)
            for y in 0..<inner { for k in 0..<r { w[k * inner + y] = Float(f[offset + y * r + k]) } }
            let op = DenseWeights(weights: w, outputFeatures: r, inputFeatures: inner)
            x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { os in
                op.apply(xs.baseAddress! + xOffset, rows: count, inputStride: stride, into: os.baseAddress! + outOffset,
                         outputStride: r, activation: .none, pool: pool, isa: .current)
            } }
        }
        func computeAV() { for j in 0..<b2 { multiply(scaled, xOffset: j * q, rows: m, stride: n, byColumnsOf: v, offset: j * q * r, inner: q, into: &av, at: j * m * r) } }
        func computeAtU() { for i in 0..<b1 { multiply(transposed, xOffset: i * p, rows: n, stride: m, byColumnsOf: u, offset: i * p * r, inner: p, into: &atu, at: i * n * r) } }
        func grams(_ f: [Double], blocks: Int, height: Int) -> [[Double]] {
            (0..<blocks).map { b in
                var g = [Double](repeating: 0, count: r * r)
                f.withUnsafeBufferPointer { ss_dgram($0.baseAddress! + b * height * r, height, r, &g) }
                return g
            }
        }
        /// diag(U_iᵀ A_ij V_j) for every (i, j), from AV (or, `fromAtU`, from AtU).
        func innerProducts(fromAtU: Bool) -> [Double] {
            var d = [Double](repeating: 0, count: b1 * b2 * r)
            let (factor, product) = fromAtU ? (v, atu) : (u, av)
            factor.withUnsafeBufferPointer { f in product.withUnsafeBufferPointer { pr in d.withUnsafeMutableBufferPointer { out in
                for i in 0..<b1 { for j in 0..<b2 {
                    let o = out.baseAddress! + (i * b2 + j) * r
                    // rows of the factor block and of the product's (i, j) block
                    let (height, fRow, pRow) = fromAtU ? (q, j * q, i * n + j * q) : (p, i * p, j * m + i * p)
                    for x in 0..<height {
                        let fx = f.baseAddress! + (fRow + x) * r, px = pr.baseAddress! + (pRow + x) * r
                        for k in 0..<r { o[k] += fx[k] * Double(px[k]) }
                    }
                } }
            } } }
            return d
        }
        /// ‖A − Â‖² = ‖A‖² − 2 Σ s·d + Σ sᵀ (G_Ui ⊙ G_Vj) s.
        func loss(_ d: [Double], _ gu: [[Double]], _ gv: [[Double]]) -> Double {
            var cross = 0.0, model = 0.0
            for i in 0..<b1 { for j in 0..<b2 {
                let base = (i * b2 + j) * r
                gu[i].withUnsafeBufferPointer { a in gv[j].withUnsafeBufferPointer { b in s.withUnsafeBufferPointer { sp in
                    let sv = sp.baseAddress! + base
                    for k in 0..<r {
                        cross += sv[k] * d[base + k]
                        var row = 0.0
                        let ak = a.baseAddress! + k * r, bk = b.baseAddress! + k * r
                        for l in 0..<r { row += ak[l] * bk[l] * sv[l] }
                        model += sv[k] * row
                    }
                } } }
            } }
            return max(0, normSquared - 2 * cross + model)
        }
        /// Σ_j S_ij G_j S_ij + εI (or over i), and Σ_j P_j S_ij + ε F_i (P_j's rows of block i).
        func normalEquations(_ f: [Double], offset: Int, height: Int, eps: Double, grams g: [[Double]],
                             terms: [(product: Int, scales: Int)], from product: [Float]) -> (numerator: [Double], h: [Double]) {
            var numerator = [Double](repeating: 0, count: height * r), h = [Double](repeating: 0, count: r * r)
            f.withUnsafeBufferPointer { fp in product.withUnsafeBufferPointer { pp in s.withUnsafeBufferPointer { sp in
                numerator.withUnsafeMutableBufferPointer { np in h.withUnsafeMutableBufferPointer { hp in
                    for e in 0..<(height * r) { np[e] = eps * fp[offset + e] }
                    for k in 0..<r { hp[k * r + k] = eps }
                    for (t, (start, scales)) in terms.enumerated() {
                        let sv = sp.baseAddress! + scales
                        for x in 0..<height {
                            let px = pp.baseAddress! + start + x * r, nx = np.baseAddress! + x * r
                            for k in 0..<r { nx[k] += Double(px[k]) * sv[k] }
                        }
                        g[t].withUnsafeBufferPointer { gp in
                            for k in 0..<r {
                                let hk = hp.baseAddress! + k * r, gk = gp.baseAddress! + k * r
                                for l in 0..<r { hk[l] += sv[k] * gk[l] * sv[l] }
                            }
                        }
                    }
                } }
            } } }
            return (numerator, h)
        }
        /// F ← N H⁻¹ for a block of `height` rows of factor `f`, H symmetric positive definite.
        func solveBlock(_ f: inout [Double], offset: Int, height: Int, numerator: [Double], _ h: [Double]) {
            var l = h
            let trace = (0..<r).reduce(0.0) { $0 + h[$1 * r + $1] }
            ss_dcholesky(&l, r, 1e-12 * max(1e-300, trace / Double(r)))
            var inverse = [Double](repeating: 0, count: r * r)
            ss_dcholesky_inverse(l, r, &inverse)
            let op = DenseWeights(weights: inverse.map(Float.init), outputFeatures: r, inputFeatures: r)
            let x = numerator.map(Float.init)
            var y = [Float](repeating: 0, count: height * r)
            x.withUnsafeBufferPointer { xs in y.withUnsafeMutableBufferPointer { ys in
                op.apply(xs.baseAddress!, rows: height, inputStride: r, into: ys.baseAddress!, outputStride: r,
                         activation: .none, pool: pool, isa: .current)
            } }
            for e in 0..<(height * r) { f[offset + e] = Double(y[e]) }
        }

        computeAV()
        var gu = grams(u, blocks: b1, height: p), gv = grams(v, blocks: b2, height: q)
        for _ in 0..<iterations {
            // U step (AV and gv hold the current V)
            var eps = delta * loss(innerProducts(fromAtU: false), gu, gv).squareRoot()
            for i in 0..<b1 {
                let (numerator, h) = normalEquations(u, offset: i * p * r, height: p, eps: eps, grams: gv,
                                                     terms: (0..<b2).map { j in ((j * m + i * p) * r, (i * b2 + j) * r) }, from: av)
                solveBlock(&u, offset: i * p * r, height: p, numerator: numerator, h)
            }
            gu = grams(u, blocks: b1, height: p)
            // V step
            computeAtU()
            eps = delta * loss(innerProducts(fromAtU: true), gu, gv).squareRoot()
            for j in 0..<b2 {
                let (numerator, h) = normalEquations(v, offset: j * q * r, height: q, eps: eps, grams: gu,
                                                     terms: (0..<b1).map { i in ((i * n + j * q) * r, (i * b2 + j) * r) }, from: atu)
                solveBlock(&v, offset: j * q * r, height: q, numerator: numerator, h)
            }
            gv = grams(v, blocks: b2, height: q)
            // s step (AV recomputed with the new V; it serves the next U step too)
            computeAV()
            let d = innerProducts(fromAtU: false)
            eps = delta * loss(d, gu, gv).squareRoot()
            for i in 0..<b1 { for j in 0..<b2 {
                let sij = (i * b2 + j) * r
                var h = [Double](repeating: 0, count: r * r)
                gu[i].withUnsafeBufferPointer { a in gv[j].withUnsafeBufferPointer { b in h.withUnsafeMutableBufferPointer { hp in
                    for e in 0..<(r * r) { hp[e] = a[e] * b[e] }
                } } }
                var trace = 0.0
                for k in 0..<r { h[k * r + k] += eps; trace += h[k * r + k] }
                var rhs = (0..<r).map { d[sij + $0] + eps * s[sij + $0] }
                ss_dcholesky(&h, r, 1e-12 * max(1e-300, trace / Double(r)))
                ss_dcholesky_solve_rows(h, r, &rhs, 1)
                for k in 0..<r { s[sij + k] = rhs[k] }
            } }
        }
        self.u = u
        self.v = v
        self.s = s.map { $0 * std }
        relativeError = 0
        // The error of what the factors hold: reconstruct each block (fp32 GEMM) against A.
        var diff = 0.0
        for i in 0..<b1 { for j in 0..<b2 {
            let sij = (i * b2 + j) * r
            var us = [Float](repeating: 0, count: p * r)
            for x in 0..<p { for k in 0..<r { us[x * r + k] = Float(u[(i * p + x) * r + k] * s[sij + k]) } }
            let vj = DenseWeights(weights: v[(j * q * r)..<((j + 1) * q * r)].map(Float.init), outputFeatures: q, inputFeatures: r)
            let block = vj.apply(Matrix(rows: p, columns: r, values: us), pool: pool).values  // U_i S_ij V_jᵀ
            for x in 0..<p { for y in 0..<q {
                let e = Double(scaled[(i * p + x) * n + j * q + y]) - Double(block[x * q + y])
                diff += e * e
            } }
        } }
        relativeError = normSquared > 0 ? (diff / normSquared).squareRoot() : 0
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

/// Small dense double-precision helpers (row-major).
enum Dense {
    static func transpose(_ a: [Double], _ rows: Int, _ cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: a.count)
        for x in 0..<rows { for y in 0..<cols { out[y * rows + x] = a[x * cols + y] } }
        return out
    }

    /// (a × k) · (k × c)
    static func multiply(_ a: [Double], _ rows: Int, _ inner: Int, _ b: [Double], _ cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * cols)
        for x in 0..<rows { for k in 0..<inner where a[x * inner + k] != 0 {
            for y in 0..<cols { out[x * cols + y] += a[x * inner + k] * b[k * cols + y] }
        } }
        return out
    }
}

/// Deterministic normal samples (SplitMix64 + Box–Muller), so fits (and benchmarks) reproduce.
public struct SplitMix: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }
    public mutating func normal() -> Double { (-2 * log(uniform())).squareRoot() * cos(2 * .pi * uniform()) }
}
