import SparseKernels
import SparseModels

/// BLAST blocks Ŵ_ij = U_i · diag(s_ij) · V_jᵀ as a dense weight, and the factors' gradients from
/// dŴ (all on the training GEMM):
///   dU_i = Σ_j (dŴ_ij V_j) ⊙ s_ij,  dV_j = Σ_i (dŴ_ijᵀ U_i) ⊙ s_ij,  ds_ij[k] = Σ_a U_i[a,k] (dŴ_ij V_j)[a,k].
/// Layout as `PackedLayer.Form.blast`: U `[out, r]`, V `[in, r]`, s `[b1, b2, r]`; row block i is
/// outputs `i·out/b1 ..< (i+1)·out/b1`, column block j likewise over the inputs.
enum BlastGradients {
    static func dense(u: [Float], v: [Float], s: [Float], outputs: Int, inputs: Int, b1: Int, b2: Int, rank r: Int) -> [Float] {
        var w = [Float](repeating: 0, count: outputs * inputs)
        var scaled = [Float](repeating: 0, count: (outputs / b1 + 1) * r)
        w.withUnsafeMutableBufferPointer { pw in
            for i in 0..<b1 {
                let p0 = i * outputs / b1, p = (i + 1) * outputs / b1 - p0
                for j in 0..<b2 {
                    let q0 = j * inputs / b2, q = (j + 1) * inputs / b2 - q0, sij = (i * b2 + j) * r
                    for a in 0..<p {
                        for k in 0..<r { scaled[a * r + k] = u[(p0 + a) * r + k] * s[sij + k] }
                    }
                    v.withUnsafeBufferPointer { pv in
                        TrainingKernels.gemm(transA: false, transB: true, m: p, n: q, k: r, a: scaled, lda: r, b: pv.baseAddress! + q0 * r, ldb: r,
                                             beta: 0, c: pw.baseAddress! + p0 * inputs + q0, ldc: inputs)
                    }
                }
            }
        }
        return w
    }

    /// `target.gradient[from + a·r + k] += m[a·r + k] · s[at + k]` over `rows` rows of `rank`; with
    /// `sums`, also `s.gradient[at + k] += m[a·r + k] · target.values[from + a·r + k]` (on raw
    /// pointers: the same sums in the same order, without an exclusivity check per element).
    private static func scale(_ m: [Float], rows: Int, rank r: Int, s: TrainableTensor, at: Int, into target: TrainableTensor, from: Int, sums: Bool) {
        m.withUnsafeBufferPointer { pm in
            target.gradient.withUnsafeMutableBufferPointer { pg in
                target.values.withUnsafeBufferPointer { pf in
                    s.values.withUnsafeBufferPointer { ps in
                        s.gradient.withUnsafeMutableBufferPointer { psg in
                            let sv = ps.baseAddress! + at, sg = psg.baseAddress! + at
                            for a in 0..<rows {
                                let row = pm.baseAddress! + a * r, g = pg.baseAddress! + from + a * r, f = pf.baseAddress! + from + a * r
                                for k in 0..<r { g[k] += row[k] * sv[k] }
                                if sums { for k in 0..<r { sg[k] += row[k] * f[k] } }
                            }
                        }
                    }
                }
            }
        }
    }

    static func accumulate(_ dw: [Float], u: TrainableTensor, v: TrainableTensor, s: TrainableTensor,
                           outputs: Int, inputs: Int, b1: Int, b2: Int, rank r: Int) {
        let maxP = outputs / b1 + 1, maxQ = inputs / b2 + 1
        var t = [Float](repeating: 0, count: maxP * r), st = [Float](repeating: 0, count: maxQ * r)
        dw.withUnsafeBufferPointer { pdw in
            for i in 0..<b1 {
                let p0 = i * outputs / b1, p = (i + 1) * outputs / b1 - p0
                for j in 0..<b2 {
                    let q0 = j * inputs / b2, q = (j + 1) * inputs / b2 - q0, sij = (i * b2 + j) * r
                    let block = pdw.baseAddress! + p0 * inputs + q0
                    // T = dŴ_ij V_j (p × r); S = dŴ_ijᵀ U_i (q × r).
                    v.values.withUnsafeBufferPointer { pv in
                        TrainingKernels.gemm(transA: false, transB: false, m: p, n: r, k: q, a: block, lda: inputs, b: pv.baseAddress! + q0 * r,
                                             ldb: r, beta: 0, c: &t, ldc: r)
                    }
                    u.values.withUnsafeBufferPointer { pu in
                        TrainingKernels.gemm(transA: true, transB: false, m: q, n: r, k: p, a: block, lda: inputs, b: pu.baseAddress! + p0 * r,
                                             ldb: r, beta: 0, c: &st, ldc: r)
                    }
                    scale(t, rows: p, rank: r, s: s, at: sij, into: u, from: p0 * r, sums: true)
                    scale(st, rows: q, rank: r, s: s, at: sij, into: v, from: q0 * r, sums: false)
                }
            }
        }
    }
}
