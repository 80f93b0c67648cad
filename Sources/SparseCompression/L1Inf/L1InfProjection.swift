import CSparseKernels
import Foundation
import SparseKernels
import SparseModels

/// ℓ1,∞ projections of a weight whose groups are its columns (inputs) or rows (neurons);
/// ‖W‖₁,∞ = Σ_g max |W_g|.
///
/// - `project`: the bi-level projection (Perez & Barlaud): the group maxima t_g are projected onto
///   the ℓ1 ball of radius η (Condat's algorithm) and every entry is clipped to its group's new
///   bound u_g. O(size), two streaming passes split across the kernel pool. Groups whose bound
///   falls to 0 vanish, so the layer can be compacted (`L1InfCompaction`).
/// - `projectExact`: the Euclidean projection onto {‖X‖₁,∞ ≤ η}, for comparison: the same clipping
///   with bounds μ_g(θ) where Σ_k (|W_gk| − μ_g)₊ = θ, θ found by Newton's method on Σ_g μ_g(θ) = η
///   after sorting every group (O(size · log) work).
/// The hot loops are C (`l1inf.c`).
public enum L1InfProjection {
    public typealias Groups = L1InfGroups

    /// Projects a row-major rows × columns weight (bi-level); `radius` η, or `radiusRatio` ρ with
    /// η = ρ · ‖W‖₁,∞.
    public static func project(_ w: [Float], rows: Int, columns: Int, groups: Groups, radius: Double?, radiusRatio: Double?,
                               pool: KernelPool? = .shared, isa: InstructionSet = .current) -> [Float] {
        precondition(w.count == rows * columns, "L1InfProjection: \(w.count) weights for \(rows)×\(columns)")
        var out = [Float](repeating: 0, count: w.count)
        guard !w.isEmpty else { return out }
        w.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                _ = project(src.baseAddress!, rows: rows, columns: columns, groups: groups, into: dst.baseAddress!,
                            radius: radius, radiusRatio: radiusRatio, pool: pool, isa: isa)
            }
        }
        return out
    }

    /// The bi-level projection of `w` into `x` (both row-major rows × columns, may be the same
    /// buffer); returns the group bounds u_g. `streaming` (default: when the output exceeds 16 MiB)
    /// writes `x` with non-temporal stores.
    @discardableResult
    public static func project(_ w: UnsafePointer<Float>, rows: Int, columns: Int, groups: Groups, into x: UnsafeMutablePointer<Float>,
                               radius: Double?, radiusRatio: Double?, pool: KernelPool? = .shared,
                               isa: InstructionSet = .current, streaming: Bool? = nil) -> [Float] {
        var bounds = groupMaxima(w, rows: rows, columns: columns, groups: groups, pool: pool, isa: isa)
        let norm = bounds.reduce(0.0) { $0 + Double($1) }
        let eta = radius ?? (radiusRatio ?? 0.5) * norm
        if norm > eta {
            var scratch = [Double](repeating: 0, count: 2 * bounds.count)
            let theta = ss_l1_ball_threshold(bounds, bounds.count, eta, &scratch)
            bounds = bounds.map { max(0, Float(Double($0) - theta)) }
        }
        clip(w, rows: rows, columns: columns, groups: groups, bounds: bounds, into: x, pool: pool, isa: isa, streaming: streaming)
        return bounds
    }

    /// The exact (Euclidean) projection of `w` into `x`; returns the group bounds μ_g.
    @discardableResult
    public static func projectExact(_ w: UnsafePointer<Float>, rows: Int, columns: Int, groups: Groups, into x: UnsafeMutablePointer<Float>,
                                    radius: Double?, radiusRatio: Double?, pool: KernelPool? = .shared,
                                    isa: InstructionSet = .current) -> [Float] {
        let count = groups == .columns ? columns : rows, length = groups == .columns ? rows : columns
        let sorted = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        let prefix = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        defer { sorted.deallocate(); prefix.deallocate() }
        let ws = SendablePointer(w), ss = SendablePointer(sorted), ps = SendablePointer(prefix)
        forEachRange(count, work: rows * columns * 8, pool: pool) { range in
            ss_l1inf_sort_groups(ws.pointer, rows, columns, columns, groups == .columns ? 1 : 0,
                                 range.lowerBound, range.upperBound, ss.pointer, ps.pointer)
        }
        var norm = 0.0
        for g in 0..<count { norm += Double(sorted[g * length]) }
        let eta = radius ?? (radiusRatio ?? 0.5) * norm
        var bounds = [Float](repeating: 0, count: count)
        _ = ss_l1inf_exact_bounds(sorted, prefix, count, length, eta, &bounds)
        clip(w, rows: rows, columns: columns, groups: groups, bounds: bounds, into: x, pool: pool, isa: isa)
        return bounds
    }

    /// ‖W‖₁,∞: the sum of the group maxima.
    public static func norm(_ w: [Float], rows: Int, columns: Int, groups: Groups) -> Double {
        w.withUnsafeBufferPointer { groupMaxima($0.baseAddress!, rows: rows, columns: columns, groups: groups, pool: nil, isa: .current) }
            .reduce(0.0) { $0 + Double($1) }
    }

    /// max |W_g| of every group.
    static func groupMaxima(_ w: UnsafePointer<Float>, rows: Int, columns: Int, groups: Groups, pool: KernelPool?,
                            isa: InstructionSet) -> [Float] {
        let count = groups == .columns ? columns : rows
        var maxima = [Float](repeating: 0, count: count)
        maxima.withUnsafeMutableBufferPointer { out in
            let ws = SendablePointer(w), os = SendablePointer(out.baseAddress!)
            forEachRange(count, work: rows * columns, pool: pool) { range in
                if groups == .rows {
                    ss_l1inf_row_max(isa.cValue, ws.pointer, columns, columns, range.lowerBound, range.upperBound, os.pointer)
                } else {
                    ss_l1inf_col_max(isa.cValue, ws.pointer, rows, columns, range.lowerBound, range.upperBound, os.pointer)
                }
            }
        }
        return maxima
    }

    /// x = clip(w, −bound_g, bound_g) group by group.
    static func clip(_ w: UnsafePointer<Float>, rows: Int, columns: Int, groups: Groups, bounds: [Float],
                     into x: UnsafeMutablePointer<Float>, pool: KernelPool?, isa: InstructionSet, streaming: Bool? = nil) {
        // Outputs far beyond the caches are written with non-temporal stores.
        let streaming = streaming ?? (rows * columns * MemoryLayout<Float>.size > 16 << 20)
        bounds.withUnsafeBufferPointer { b in
            let ws = SendablePointer(w), bs = SendablePointer(b.baseAddress!), xs = SendablePointer(x)
            forEachRange(groups == .columns ? columns : rows, work: rows * columns, pool: pool) { range in
                if groups == .rows {
                    ss_l1inf_clip_rows(isa.cValue, ws.pointer, columns, columns, bs.pointer, range.lowerBound, range.upperBound, xs.pointer, columns,
                                       streaming ? 1 : 0)
                } else {
                    ss_l1inf_clip_cols(isa.cValue, ws.pointer, rows, columns, bs.pointer, range.lowerBound, range.upperBound, xs.pointer, columns,
                                       streaming ? 1 : 0)
                }
            }
        }
    }

    /// Runs `body` over 0..<count, split across `pool` (dynamically claimed parts whose bounds are
    /// multiples of 16, so column ranges never share a cache line) when the work (elements
    /// touched) is large enough to pay for the hand-off.
    static func forEachRange(_ count: Int, work: Int, pool: KernelPool?, _ body: @escaping @Sendable (Range<Int>) -> Void) {
        let units = (count + 15) / 16
        guard let pool, pool.threadCount > 1, work >= 1 << 17, units > 1 else { return body(0..<count) }
        let parts = min(units, KernelPool.partsPerThread * pool.threadCount)
        pool.run(parts: parts) { part in
            let lower = min(count, 16 * (units * part / parts)), upper = min(count, 16 * (units * (part + 1) / parts))
            if lower < upper { body(lower..<upper) }
        }
    }

    /// Euclidean projection of a non-negative vector onto {u ≥ 0, Σ u ≤ η} (sort-based threshold;
    /// a simple reference for the C threshold).
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

/// A raw pointer handed to pool workers; each writes only its own range.
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { pointer = p }
    init(_ p: UnsafePointer<T>) { pointer = UnsafeMutablePointer(mutating: p) }
}
