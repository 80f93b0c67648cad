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
        // Scale A to unit standard deviation for the fit.
        let mean = a.reduce(0.0) { $0 + Double($1) } / Double(a.count)
        let std = max(1e-12, (a.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(a.count)).squareRoot())
        var fit = BlastFit(scaled: a.map { Float(Double($0) / std) }, rows: m, columns: n, rowBlocks: b1, columnBlocks: b2, rank: r,
                           seed: seed, pool: pool)
        fit.computeAV()
        for _ in 0..<iterations { fit.step(delta: delta) }
        u = fit.u
        v = fit.v
        s = fit.s.map { $0 * std }
        relativeError = fit.reconstructionError()
    }

    /// Replaces every V_j by `transform(j, V_j)` (columns/b2 × r, row-major), e.g. to undo a
    /// whitening of the fitted weight (`WhitenedBlast`); `relativeError` still describes the fit.
    mutating func replaceColumnFactors(_ transform: (Int, [Double]) -> [Double]) {
        let size = columns / columnBlocks * rank
        for j in 0..<columnBlocks {
            let updated = transform(j, Array(v[j * size..<(j + 1) * size]))
            v.replaceSubrange(j * size..<(j + 1) * size, with: updated)
        }
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

/// The state of one BLAST fit on a scaled weight A (m × n, row-major; Aᵀ kept too, both fp32 for
/// the GEMMs): the factors in double, and the products AV (A[:, block j] · V_j, m × r per j) and
/// AtU (Aᵀ[:, block i] · U_i, n × r per i) that the updates read.
private struct BlastFit {
    let m: Int, n: Int, b1: Int, b2: Int, r: Int, p: Int, q: Int
    let scaled: [Float], transposed: [Float], normSquared: Double
    let pool: KernelPool?
    var u: [Double], v: [Double], s: [Double]
    var av: [Float], atu: [Float]
    var gu: [[Double]] = [], gv: [[Double]] = []

    init(scaled: [Float], rows m: Int, columns n: Int, rowBlocks b1: Int, columnBlocks b2: Int, rank r: Int, seed: UInt64,
         pool: KernelPool?) {
        self.m = m; self.n = n; self.b1 = b1; self.b2 = b2; self.r = r; p = m / b1; q = n / b2
        self.scaled = scaled
        var transposed = [Float](repeating: 0, count: m * n)
        for x in 0..<m { for y in 0..<n { transposed[y * m + x] = scaled[x * n + y] } }
        self.transposed = transposed
        normSquared = scaled.reduce(0.0) { $0 + Double($1) * Double($1) }
        self.pool = pool
        var rng = SplitMix(seed: seed)
        u = (0..<(m * r)).map { _ in rng.normal() / Double(r).squareRoot() * 1e-3 }
        v = (0..<(n * r)).map { _ in rng.normal() / Double(r).squareRoot() * 1e-3 }
        s = (0..<(b1 * b2 * r)).map { _ in rng.normal() }
        av = [Float](repeating: 0, count: b2 * m * r)
        atu = [Float](repeating: 0, count: b1 * n * r)
    }

    /// One outer step: all U_i, then all V_j, then all s_ij (AV must hold the current V).
    mutating func step(delta: Double) {
        if gu.isEmpty { (gu, gv) = (grams(u, blocks: b1, height: p), grams(v, blocks: b2, height: q)) }
        var eps = delta * loss(innerProducts(fromAtU: false)).squareRoot()
        u = solvedFactor(u, blocks: b1, height: p, eps: eps, grams: gv, from: av) { [b2, m, p, r] i in
            (0..<b2).map { j in ((j * m + i * p) * r, (i * b2 + j) * r) }
        }
        gu = grams(u, blocks: b1, height: p)
        computeAtU()
        eps = delta * loss(innerProducts(fromAtU: true)).squareRoot()
        v = solvedFactor(v, blocks: b2, height: q, eps: eps, grams: gu, from: atu) { [b1, b2, n, q, r] j in
            (0..<b1).map { i in ((i * n + j * q) * r, (i * b2 + j) * r) }
        }
        gv = grams(v, blocks: b2, height: q)
        // s step (AV recomputed with the new V; it serves the next U step too)
        computeAV()
        let d = innerProducts(fromAtU: false)
        eps = delta * loss(d).squareRoot()
        for i in 0..<b1 { for j in 0..<b2 { updateScales(i, j, d: d, eps: eps) } }
    }

    /// s_ij ← ((U_iᵀU_i) ⊙ (V_jᵀV_j) + εI)⁻¹ (d_ij + ε s_ij).
    private mutating func updateScales(_ i: Int, _ j: Int, d: [Double], eps: Double) {
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
    }

    /// out (count × r) = x (count × inner, row stride `stride`) · F, F = f[offset...] (inner × r).
    private func multiply(_ x: [Float], xOffset: Int, rows count: Int, stride: Int, byColumnsOf f: [Double], offset: Int, inner: Int,
                          into out: inout [Float], at outOffset: Int) {
        var w = [Float](repeating: 0, count: r * inner)
        for y in 0..<inner { for k in 0..<r { w[k * inner + y] = Float(f[offset + y * r + k]) } }
        let op = DenseWeights(weights: w, outputFeatures: r, inputFeatures: inner)
        x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBufferPointer { os in
            op.apply(xs.baseAddress! + xOffset, rows: count, inputStride: stride, into: os.baseAddress! + outOffset,
                     outputStride: r, activation: .none, pool: pool, isa: .current)
        } }
    }

    /// AV[j] = A[:, block j] · V_j for every j.
    mutating func computeAV() {
        var out: [Float] = []
        swap(&out, &av)  // filled in place, without a copy
        fill(&out, products: scaled, rows: m, stride: n, factor: v, blocks: b2, height: q)
        av = out
    }

    /// AtU[i] = Aᵀ[:, block i] · U_i for every i.
    mutating func computeAtU() {
        var out: [Float] = []
        swap(&out, &atu)
        fill(&out, products: transposed, rows: n, stride: m, factor: u, blocks: b1, height: p)
        atu = out
    }

    /// x[:, block b] · F_b for every block b (F_b: `height` rows of `factor`) into `out`.
    private func fill(_ out: inout [Float], products x: [Float], rows: Int, stride: Int, factor: [Double], blocks: Int, height: Int) {
        for b in 0..<blocks {
            multiply(x, xOffset: b * height, rows: rows, stride: stride, byColumnsOf: factor, offset: b * height * r, inner: height,
                     into: &out, at: b * rows * r)
        }
    }

    private func grams(_ f: [Double], blocks: Int, height: Int) -> [[Double]] {
        (0..<blocks).map { b in
            var g = [Double](repeating: 0, count: r * r)
            f.withUnsafeBufferPointer { ss_dgram($0.baseAddress! + b * height * r, height, r, &g) }
            return g
        }
    }

    /// diag(U_iᵀ A_ij V_j) for every (i, j), from AV (or, `fromAtU`, from AtU).
    private func innerProducts(fromAtU: Bool) -> [Double] {
        var d = [Double](repeating: 0, count: b1 * b2 * r)
        let (factor, product) = fromAtU ? (v, atu) : (u, av)
        let (b1, b2, r, p, q, m, n) = (b1, b2, r, p, q, m, n)
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
    private func loss(_ d: [Double]) -> Double {
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
    /// The U (or V) step: every block of factor `f` (`blocks` blocks of `height` rows) solved in turn
    /// from its normal equations against the other factor's Grams and `product` (AV or AᵀU);
    /// `terms(i)` gives block i's (product offset, scales offset) pairs, one per block it meets.
    private func solvedFactor(_ f: [Double], blocks: Int, height: Int, eps: Double, grams: [[Double]], from product: [Float],
                              terms: (Int) -> [(product: Int, scales: Int)]) -> [Double] {
        var f = f
        for i in 0..<blocks {
            let (numerator, h) = normalEquations(f, offset: i * height * r, height: height, eps: eps, grams: grams, terms: terms(i),
                                                 from: product)
            f.replaceSubrange(i * height * r ..< (i + 1) * height * r, with: solveBlock(height: height, numerator: numerator, h))
        }
        return f
    }

    private func normalEquations(_ f: [Double], offset: Int, height: Int, eps: Double, grams g: [[Double]],
                                 terms: [(product: Int, scales: Int)], from product: [Float]) -> (numerator: [Double], h: [Double]) {
        let r = r
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

    /// N H⁻¹ for a block of `height` rows, H symmetric positive definite.
    private func solveBlock(height: Int, numerator: [Double], _ h: [Double]) -> [Double] {
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
        return y.map(Double.init)
    }

    /// ‖A − Â‖_F / ‖A‖_F of what the factors hold: each block reconstructed (fp32 GEMM) against A.
    func reconstructionError() -> Double {
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
        return normSquared > 0 ? (diff / normSquared).squareRoot() : 0
    }
}
