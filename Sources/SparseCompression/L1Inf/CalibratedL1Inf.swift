import SparseKernels
import SparseModels

/// Data-aware ℓ1,∞ (calibration): the bi-level projection runs on the activation-scaled weight
/// W·diag(‖x_j‖) (‖x_j‖ = √H_jj over the calibration inputs), so a group's bound measures how much
/// it moves the outputs rather than its raw weights (fc1 of the digits MLP folds the input
/// standardisation into its columns: its largest raw columns belong to near-constant pixels). The
/// groups the projection keeps (columns or rows) then carry the original weights, compensated
/// with `hessian` saliency (column groups: the OBS sweep with the dropped columns pruned), and
/// with `refit` the kept weights and the bias are refitted to the dense layer's outputs. Vanished
/// groups stay exactly zero, so `L1InfCompaction` shrinks the layer and its neighbours as usual.
enum CalibratedL1Inf {
    static func project(weights w: [Float], bias: [Float]?, rows: Int, columns: Int, groups: L1InfGroups, radius: Double?,
                        radiusRatio: Double?, statistics s: InputStatistics, options: CalibrationOptions) throws -> (weights: [Float], bias: [Float]?) {
        let norms = (0..<columns).map { Float(s.gram[$0 * columns + $0].squareRoot()) }
        let scaled = (0..<w.count).map { w[$0] * norms[$0 % columns] }
        // An absolute radius keeps its meaning as a fraction of the weight's own ℓ1,∞ norm.
        let ratio = radius.map { $0 / max(L1InfProjection.norm(w, rows: rows, columns: columns, groups: groups), .leastNonzeroMagnitude) }
            ?? radiusRatio
        let projected = L1InfProjection.project(scaled, rows: rows, columns: columns, groups: groups, radius: nil, radiusRatio: ratio)
        let kept = groups == .columns
            ? Set(0..<columns).subtracting(L1InfCompaction.zeroColumns(projected, rows: rows, columns: columns))
            : Set(0..<rows).subtracting(L1InfCompaction.zeroRows(projected, rows: rows, columns: columns))
        let mask = (0..<w.count).map { UInt8(kept.contains(groups == .columns ? $0 % columns : $0 / columns) ? 1 : 0) }
        var weights = (0..<w.count).map { mask[$0] != 0 ? w[$0] : 0 }
        if options.saliency == .hessian, groups == .columns {
            weights = w
            try SecondOrderPruning(gram: s.gram, features: columns, damping: options.damping).prune(&weights, rows: rows, n: 1, m: 1, mask: mask)
        }
        var b = bias ?? [Float](repeating: 0, count: rows)
        if options.refit, s.cross != nil {
            try LeastSquaresRefit.refit(weights: &weights, bias: &b, mask: mask, dense: w, denseBias: bias, rows: rows, statistics: s,
                                        iterations: options.refitIterations)
        }
        return (weights, bias == nil ? nil : b)
    }
}
