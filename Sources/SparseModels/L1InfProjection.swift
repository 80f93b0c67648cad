import Foundation
import SparseKernels

/// Bi-level ℓ1,∞ projection (Perez & Barlaud): the per-group maxima v_g = max |w| of a weight's
/// columns (inputs) or rows (neurons) are projected onto the ℓ1 ball of radius η, and every entry
/// is clipped to its group's new bound. Groups whose bound falls to 0 vanish, so the layer can be
/// compacted: dropped inputs are skipped by gathering the kept ones, dropped neurons output the
/// constant activation(bias).
public enum L1InfProjection {
    public enum Groups: String, Sendable { case columns, rows }

    /// Projects a row-major rows × columns weight; `radius` η, or `radiusRatio` ρ with η = ρ·Σ v_g.
    public static func project(_ w: [Float], rows: Int, columns: Int, groups: Groups, radius: Double?, radiusRatio: Double?) -> [Float] {
        let count = groups == .columns ? columns : rows
        var maxima = [Double](repeating: 0, count: count)
        for r in 0..<rows { for c in 0..<columns {
            let g = groups == .columns ? c : r
            maxima[g] = max(maxima[g], Double(abs(w[r * columns + c])))
        } }
        let eta = radius ?? (radiusRatio ?? 0.5) * maxima.reduce(0, +)
        let bounds = projectOntoL1Ball(maxima, radius: eta)
        var out = w
        for r in 0..<rows { for c in 0..<columns {
            let bound = Float(bounds[groups == .columns ? c : r])
            out[r * columns + c] = max(-bound, min(bound, w[r * columns + c]))
        } }
        return out
    }

    /// Euclidean projection of a non-negative vector onto {u ≥ 0, Σ u ≤ η} (sort-based threshold).
    public static func projectOntoL1Ball(_ v: [Double], radius eta: Double) -> [Double] {
        guard v.reduce(0, +) > eta else { return v }
        guard eta > 0 else { return v.map { _ in 0 } }
        let sorted = v.sorted(by: >)
        var cumulative = 0.0, theta = 0.0
        for (k, value) in sorted.enumerated() {
            cumulative += value
            let t = (cumulative - eta) / Double(k + 1)
            if value - t > 0 { theta = t } else { break }
        }
        return v.map { max(0, $0 - theta) }
    }
}
