import CSparseKernels
import SparseKernels

/// BLAST factors fitted to minimise ‖(W − Ŵ) X‖ instead of ‖W − Ŵ‖, with the block-diagonal part
/// of H = XᵀX: for each column block j, H_jj + λI = L_j L_jᵀ, so Σ_j ‖(W_j − Ŵ_j) L_j‖² is the
/// loss. Fitting BLAST to the whitened weight W̃_j = W_j L_j keeps the structure exactly:
/// Ŵ_ij = U_i S_ij Ṽ_jᵀ L_j⁻¹, i.e. V_j = L_j⁻ᵀ Ṽ_j, with U and s as fitted.
public enum WhitenedBlast {
    public static func fit(weights w: [Float], rows: Int, columns: Int, blocks: Int, rank: Int, iterations: Int,
                           gram h: [Double], damping: Double = 0.01) throws -> BlastFactorization {
        let q = columns / blocks
        var whitened = [Float](repeating: 0, count: rows * columns)
        var inverses: [[Double]] = []
        let mean = (0..<columns).reduce(0.0) { $0 + h[$1 * columns + $1] } / Double(max(1, columns))
        for j in 0..<blocks {
            var l = [Double](repeating: 0, count: q * q)
            for a in 0..<q { for b in 0..<q { l[a * q + b] = h[(j * q + a) * columns + j * q + b] / max(mean, 1e-30) } }
            for a in 0..<q { l[a * q + a] += damping }
            ss_dcholesky(&l, q, 1e-12)
            var inverse = [Double](repeating: 0, count: q * q)
            ss_dlower_inverse(l, q, &inverse)
            inverses.append(inverse)
            for r in 0..<rows {                               // W̃[r, block j] = W[r, block j] · L_j
                for b in 0..<q {
                    var sum = 0.0
                    for a in b..<q { sum += Double(w[r * columns + j * q + a]) * l[a * q + b] }
                    whitened[r * columns + j * q + b] = Float(sum)
                }
            }
        }
        var fit = try BlastFactorization(fitting: whitened, rows: rows, columns: columns, rowBlocks: blocks, columnBlocks: blocks,
                                         rank: rank, iterations: iterations)
        fit.replaceColumnFactors { j, vTilde in          // V_j = L_j⁻ᵀ Ṽ_j (q × r)
            let inverse = inverses[j]
            var v = [Double](repeating: 0, count: q * rank)
            for a in 0..<q {
                for b in a..<q {
                    let m = inverse[b * q + a]
                    if m == 0 { continue }
                    for k in 0..<rank { v[a * rank + k] += m * vTilde[b * rank + k] }
                }
            }
            return v
        }
        return fit
    }
}
