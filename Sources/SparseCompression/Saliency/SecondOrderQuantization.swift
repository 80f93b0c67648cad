import CSparseKernels
import SparseKernels

/// GPTQ: int8 rounding by the same optimal-brain-surgeon column sweep as `SecondOrderPruning`
/// (obs.c `ss_obs_quantize`), so each weight's rounding error is compensated by the weights to its
/// right and the layer's outputs on the calibration inputs move less than with round-to-nearest
/// (the loss is tr((W − Q) H (W − Q)ᵀ)). Symmetric scales, absmax / 127 over the kept weights: per
/// row before the sweep, or per row and group when the sweep reaches the group.
extension SecondOrderPruning {
    /// Rounds `weights` (rows × features; zero where `mask` prunes, 1 = keep) and returns the int8
    /// values (rows × (features − freeColumns)) and scales (rows × scales per row, as
    /// `quantizeInt8` lays them out). `weights` ends as the dequantised values, and the last
    /// `freeColumns` (not rounded, e.g. an appended bias column) carry the compensation.
    public func quantize(_ weights: inout [Float], rows: Int, granularity: Int8Granularity, mask: [UInt8]? = nil,
                         freeColumns: Int = 0, pool: KernelPool = .shared) throws -> (values: [Int8], scales: [Float]) {
        let f = features, rounded = f - freeColumns
        guard rows > 0, rounded > 0, freeColumns >= 0, weights.count == rows * f, mask.map({ $0.count == rows * f }) ?? true else {
            throw QuantizationError.shape("GPTQ: \(weights.count) weights for \(rows) rows of \(f) (\(freeColumns) free)")
        }
        if case .group(let width) = granularity, width <= 0 { throw QuantizationError.invalidGroup(width) }
        if let bad = weights.firstIndex(where: { !$0.isFinite }) { throw QuantizationError.nonFiniteWeight(index: bad) }
        var values = [Int8](repeating: 0, count: rows * rounded), scales = [Float](repeating: 0, count: 0)
        let keep = mask ?? []
        let width = groupWidth(granularity)
        try keep.withUnsafeBufferPointer { mk in
            let maskPointer = mask == nil ? nil : mk.baseAddress
            let params = ss_obs_quant_params(group: width, free_cols: freeColumns, mask: maskPointer)
            scales = [Float](repeating: 0, count: rows * withUnsafePointer(to: params) { ss_obs_quant_groups($0, f) })
            try values.withUnsafeMutableBufferPointer { v in
                try scales.withUnsafeMutableBufferPointer { s in
                    let (pv, ps) = (SendablePointer(v.baseAddress!), SendablePointer(s.baseAddress!))
                    let pk = maskPointer.map { SendablePointer($0) }
                    try sweep(&weights, rows: rows, pool: pool, "GPTQ sweep") { u, dead, w, begin, end in
                        var params = ss_obs_quant_params(group: width, free_cols: freeColumns,
                                                         mask: pk.map { UnsafePointer($0.pointer) })
                        return ss_obs_quantize(InstructionSet.current.cValue, &params, u, f, dead, w, f, begin, end, pv.pointer, rounded,
                                               ps.pointer)
                    }
                }
            }
        }
        return (values, scales)
    }

    private func groupWidth(_ granularity: Int8Granularity) -> Int {
        if case .group(let width) = granularity { return width }
        return 0
    }
}
