import CSparseKernels
import SparseKernels

/// SparseGPT-style pruning of one linear layer from its calibration Gram matrix H (obs.c): the
/// upper Cholesky factor U of (H + damping)⁻¹, then the column sweep that prunes and spreads each
/// pruned weight's error over the kept weights to its right. Rows run in parallel on the pool.
public struct SecondOrderPruning: Sendable {
    public let features: Int
    /// U (features × features, upper), H⁻¹ = UᵀU.
    public let factor: [Double]
    /// Inputs that were always zero in the calibration data (their weights are dropped).
    public let dead: [UInt8]

    /// Prepares U from H (full, symmetric, features²) with `damping` × mean(diag H) added to the
    /// diagonal; a zero diagonal entry marks a dead input (its diagonal taken as 1).
    public init(gram: [Double], features: Int, damping: Double) throws {
        if features < 0 || gram.count != features * features {
            try KernelError.check(SS_ERR_ARGUMENT.rawValue, "inverse-Hessian factor: \(gram.count) Gram entries for \(features) inputs")
        }
        var u = gram, dead = [UInt8](repeating: 0, count: features)
        try KernelError.check(ss_obs_prepare(&u, features, damping, &dead).rawValue, "inverse-Hessian factor (\(features) inputs)")
        self.features = features
        factor = u
        self.dead = dead
    }

    /// diag(H⁻¹): column norms² of U (the OBS saliency of w_ij is w_ij² / [H⁻¹]_jj).
    public var inverseDiagonal: [Double] {
        var d = [Double](repeating: 0, count: features)
        for i in 0..<features { for j in i..<features { d[j] += factor[i * features + j] * factor[i * features + j] } }
        return d
    }

    /// Prunes `weights` (rows × features) in place: n of every m per row chosen by the sweep, or
    /// `mask` (1 = keep, rows × features) followed when given. Returns the mask used; counts that
    /// do not match the shape throw.
    @discardableResult
    public func prune(_ weights: inout [Float], rows: Int, n: Int, m: Int, mask fixed: [UInt8]? = nil,
                      pool: KernelPool = .shared) throws -> [UInt8] {
        if rows <= 0 || features <= 0 || m <= 0 || weights.count != rows * features || fixed.map({ $0.count != weights.count }) == true {
            try KernelError.check(SS_ERR_ARGUMENT.rawValue,
                                  "OBS sweep: \(weights.count) weights and \(fixed?.count ?? 0) mask entries for \(rows) rows of \(features), n:m \(n):\(m)")
        }
        var mask = fixed ?? [UInt8](repeating: 0, count: rows * features)
        var params = ss_obs_params(n: Int32(n), m: Int32(m), block: 128 / m * m, fixed_mask: fixed == nil ? 0 : 1)
        if fixed != nil { params = ss_obs_params(n: 1, m: 1, block: 128, fixed_mask: 1) }
        let f = features, p = params
        try mask.withUnsafeMutableBufferPointer { mk in
            let pm = SendablePointer(mk.baseAddress!)
            try sweep(&weights, rows: rows, pool: pool, "OBS sweep") { u, dead, w, begin, end in
                var params = p
                return ss_obs_prune(InstructionSet.current.cValue, &params, u, f, dead, w, f, begin, end, pm.pointer)
            }
        }
        return mask
    }

    /// Runs `body(u, dead, weights, rowBegin, rowEnd)` over parts of the rows of `weights` on the pool.
    func sweep(_ weights: inout [Float], rows: Int, pool: KernelPool, _ what: String,
               _ body: @escaping @Sendable (UnsafePointer<Double>, UnsafePointer<UInt8>, UnsafeMutablePointer<Float>, Int, Int) -> ss_status) throws {
        let parts = max(1, min(pool.threadCount * 2, rows / 8))
        let status = SendableStatus(parts)
        try factor.withUnsafeBufferPointer { u in
            try dead.withUnsafeBufferPointer { d in
                weights.withUnsafeMutableBufferPointer { w in
                    let (pu, pd, pw) = (SendablePointer(u.baseAddress!), SendablePointer(d.baseAddress!), SendablePointer(w.baseAddress!))
                    pool.run(parts: parts) { part in
                        status.set(part, body(UnsafePointer(pu.pointer), UnsafePointer(pd.pointer), pw.pointer, rows * part / parts, rows * (part + 1) / parts))
                    }
                }
                try status.check("\(what) of a \(rows) × \(features) weight")
            }
        }
    }
}
