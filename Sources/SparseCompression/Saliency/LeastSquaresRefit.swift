import SparseKernels

/// Refits the kept weights and the bias of a pruned layer to the dense layer's outputs, with the
/// mask fixed: per row i, minimise ‖Yᵈ_i − ŵ_i X − b_i‖² + λ‖(ŵ_i, b_i)‖² over the kept entries,
/// where X are the compressed model's inputs to the layer and Yᵈ = W Xᵈ + b the dense layer's
/// outputs on the dense model's inputs. With the augmented input (x, 1) the normal equations of
/// row i are ŵ_i (H + λI) = w_i Cᵀ restricted to the kept set (H = Σ x xᵀ, C = Σ x xᵈᵀ). All rows
/// are solved together by Jacobi-preconditioned conjugate gradients from the current weights, each
/// iteration one fp32 GEMM P·H on the kernel pool (so it never gets worse than where it started,
/// up to rounding, and stops early once every row has converged).
public enum LeastSquaresRefit {
    /// `weights` (rows × features, zero off the mask) and `bias` (rows) are updated in place;
    /// `dense` / `denseBias` are the layer's original parameters (no bias: none is fitted). Returns the
    /// iterations run.
    @discardableResult
    public static func refit(weights: inout [Float], bias: inout [Float], mask: [UInt8], dense: [Float], denseBias: [Float]?,
                             rows: Int, statistics s: InputStatistics, ridge: Double = 0.01, iterations: Int = 15,
                             pool: KernelPool = .shared) throws -> Int {
        guard let c = s.augmentedCross else { return 0 }
        var h = s.augmentedGram
        let f = s.features, a = f + 1
        let lambda = ridge * (0..<a).reduce(0.0) { $0 + h[$1 * a + $1] } / Double(a)
        for i in 0..<a { h[i * a + i] += lambda }
        let diag = (0..<a).map { h[$0 * a + $0] }
        let gram = DenseWeights(weights: h.map(Float.init), outputFeatures: a, inputFeatures: a, bias: nil)
        // Targets: row i of B is Σ_t yᵈ_i(t) x_aug(t) = w_aug,i · (Σ xᵈ_aug x_augᵀ) = w_aug,i · Cᵀ.
        let crossT = DenseWeights(weights: c.map(Float.init), outputFeatures: a, inputFeatures: a, bias: nil)
        var wd = [Float](repeating: 0, count: rows * a), x = wd
        let keep = (0..<rows * a).map { i in i % a == f ? denseBias != nil : mask[i / a * f + i % a] != 0 }
        for r in 0..<rows {
            for j in 0..<f { wd[r * a + j] = dense[r * f + j]; x[r * a + j] = weights[r * f + j] }
            wd[r * a + f] = denseBias?[r] ?? 0
            x[r * a + f] = bias[r]
        }
        let target = multiply(wd, crossT, rows: rows, pool: pool)
        var residual = multiply(x, gram, rows: rows, pool: pool)
        for i in 0..<rows * a { residual[i] = keep[i] ? target[i] - residual[i] : 0 }
        var z = (0..<rows * a).map { residual[$0] / Float(diag[$0 % a]) }, p = z
        var rz = rowDots(residual, z, rows: rows, width: a)
        let start = rz.map { max($0, 1e-30) }
        var done = 0
        for step in 1...max(1, iterations) {
            var q = multiply(p, gram, rows: rows, pool: pool)
            for i in 0..<rows * a where !keep[i] { q[i] = 0 }
            let pq = rowDots(p, q, rows: rows, width: a)
            for r in 0..<rows where pq[r] > 0 && rz[r] > 0 {
                let alpha = Float(rz[r] / pq[r])
                for j in r * a..<(r + 1) * a { x[j] += alpha * p[j]; residual[j] -= alpha * q[j] }
            }
            for i in 0..<rows * a { z[i] = residual[i] / Float(diag[i % a]) }
            let next = rowDots(residual, z, rows: rows, width: a)
            for r in 0..<rows {
                let beta = rz[r] > 0 ? Float(next[r] / rz[r]) : 0
                for j in r * a..<(r + 1) * a { p[j] = z[j] + beta * p[j] }
            }
            rz = next
            done = step
            if zip(rz, start).allSatisfy({ $0 <= 1e-10 * $1 }) { break }
        }
        for r in 0..<rows {
            for j in 0..<f { weights[r * f + j] = mask[r * f + j] != 0 ? x[r * a + j] : 0 }
            bias[r] = x[r * a + f]
        }
        return done
    }

    /// rows × a times the symmetric (or transposed) a × a matrix held as a dense operator.
    static func multiply(_ m: [Float], _ op: DenseWeights, rows: Int, pool: KernelPool) -> [Float] {
        var out = [Float](repeating: 0, count: rows * op.outputFeatures)
        m.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                op.apply(x.baseAddress!, rows: rows, inputStride: op.inputFeatures, into: y.baseAddress!, outputStride: op.outputFeatures,
                         activation: .none, pool: pool, isa: .current)
            }
        }
        return out
    }

    static func rowDots(_ a: [Float], _ b: [Float], rows: Int, width: Int) -> [Double] {
        (0..<rows).map { r in
            var s = 0.0
            for j in r * width..<(r + 1) * width { s += Double(a[j]) * Double(b[j]) }
            return s
        }
    }
}
