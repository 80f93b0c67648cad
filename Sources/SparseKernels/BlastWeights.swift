import CSparseKernels

/// A BLAST block-factored linear layer. The weight (N × K) is split into b1 × b2 blocks; block
/// (i, j) is `U_i · diag(s_ij) · V_jᵀ` with U_i (N/b1 × r), V_j (K/b2 × r) and s_ij (r), so the
/// layer stores r·(N + K + b1·b2) numbers instead of N·K. It runs as three steps — a batched GEMM
/// (`z_j = x_j V_j`), the diagonal mix (`h_i = Σ_j s_ij ⊙ z_j`, never materialising the
/// b1×b2×rows×r products) and a batched GEMM (`y_i = h_i U_iᵀ`) with the bias and activation
/// fused into the last one.
public final class BlastWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let rowBlocks: Int
    public let columnBlocks: Int
    public let rank: Int
    public let bias: [Float]?
    /// b2 packed `V_jᵀ` (r × K/b2) and b1 packed `U_i` (N/b1 × r), each a dense kernel.
    private let v: [DenseWeights]
    private let u: [DenseWeights]
    /// s[(i·b2 + j)·r + t].
    public let diagonals: [Float]

    public enum ShapeError: Error, CustomStringConvertible {
        case indivisible(String)
        public var description: String { switch self { case .indivisible(let s): return s } }
    }

    /// - Parameters:
    ///   - u: b1 matrices N/b1 × r (row-major), concatenated.
    ///   - v: b2 matrices K/b2 × r (row-major), concatenated.
    ///   - s: b1·b2·r diagonal entries, block (i, j) at (i·b2 + j)·r.
    public init(u: [Float], v: [Float], s: [Float], outputFeatures: Int, inputFeatures: Int,
                rowBlocks b1: Int, columnBlocks b2: Int, rank r: Int, bias: [Float]? = nil) throws {
        guard b1 >= 1, b2 >= 1, r >= 1, outputFeatures % b1 == 0, inputFeatures % b2 == 0 else {
            throw ShapeError.indivisible("BLAST needs \(outputFeatures) outputs divisible by b1 = \(b1) and \(inputFeatures) inputs by b2 = \(b2), rank ≥ 1")
        }
        let p = outputFeatures / b1, q = inputFeatures / b2
        precondition(u.count == b1 * p * r && v.count == b2 * q * r && s.count == b1 * b2 * r, "BlastWeights: factor sizes do not match the shape")
        precondition(bias.map { $0.count == outputFeatures } ?? true, "BlastWeights: bias needs \(outputFeatures) values")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        rowBlocks = b1
        columnBlocks = b2
        rank = r
        self.bias = bias
        diagonals = s
        self.v = (0..<b2).map { j in
            // V_jᵀ as an r × q weight (row t = column t of V_j).
            var vt = [Float](repeating: 0, count: r * q)
            for a in 0..<q { for t in 0..<r { vt[t * q + a] = v[(j * q + a) * r + t] } }
            return DenseWeights(weights: vt, outputFeatures: r, inputFeatures: q)
        }
        self.u = (0..<b1).map { i in
            DenseWeights(weights: Array(u[(i * p * r)..<((i + 1) * p * r)]), outputFeatures: p, inputFeatures: r,
                         bias: bias.map { Array($0[(i * p)..<((i + 1) * p)]) })
        }
    }

    public var storage: String { "blast b=\(rowBlocks)x\(columnBlocks) r=\(rank)" }
    public var parameterCount: Int { rank * (outputFeatures + inputFeatures + rowBlocks * columnBlocks) + (bias?.count ?? 0) }
    public var byteCount: Int { v.reduce(0) { $0 + $1.byteCount } + u.reduce(0) { $0 + $1.byteCount } + diagonals.count * 4 }

    /// The dense weight the factors represent (N × K, row-major), for tests and error reports.
    public func denseWeights() -> [Float] {
        let p = outputFeatures / rowBlocks, q = inputFeatures / columnBlocks, r = rank
        var w = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        let us = u.map { $0.unpackedWeights() }, vts = v.map { $0.unpackedWeights() }
        for i in 0..<rowBlocks {
            for j in 0..<columnBlocks {
                for a in 0..<p {
                    for b in 0..<q {
                        var sum: Float = 0
                        for t in 0..<r { sum += us[i][a * r + t] * diagonals[(i * columnBlocks + j) * r + t] * vts[j][t * q + b] }
                        w[(i * p + a) * inputFeatures + j * q + b] = sum
                    }
                }
            }
        }
        return w
    }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, isa: InstructionSet = .current) {
        guard rows > 0 else { return }
        let b1 = rowBlocks, b2 = columnBlocks, r = rank
        let p = outputFeatures / b1, q = inputFeatures / b2
        let z = UnsafeMutablePointer<Float>.allocate(capacity: rows * b2 * r)
        let h = UnsafeMutablePointer<Float>.allocate(capacity: rows * b1 * r)
        defer { z.deallocate(); h.deallocate() }
        for j in 0..<b2 {
            v[j].apply(x + j * q, rows: rows, inputStride: inputFeatures, into: z + j * r, outputStride: b2 * r,
                       activation: .none, isa: isa)
        }
        diagonals.withUnsafeBufferPointer { s in
            ss_blast_mix_isa(isa.cValue, z, rows, Int32(b1), Int32(b2), r, s.baseAddress, h)
        }
        for i in 0..<b1 {
            u[i].apply(h + i * r, rows: rows, inputStride: b1 * r, into: y + i * p, outputStride: outputFeatures,
                       activation: activation, isa: isa)
        }
    }
}

/// A piecewise-linear stand-in for an activation: `segments` uniform segments on [lo, hi], each the
/// chord of the exact function shifted to split its largest over- and under-shoot evenly (about
/// half the error of plain interpolation); outside the range the end segments' lines continue
/// (right for GELU/ReLU/SiLU tails, flat for tanh/sigmoid).
public struct PWLActivation: Sendable {
    public let activation: Activation
    public let segments: Int
    public let lo: Float
    public let hi: Float
    public let slopes: [Float]
    public let offsets: [Float]

    public init(_ activation: Activation, segments: Int = 32, lo: Float = -8, hi: Float = 8) {
        precondition(segments >= 1 && hi > lo, "PWLActivation: needs at least one segment on a non-empty range")
        self.activation = activation
        self.segments = segments
        self.lo = lo
        self.hi = hi
        let step = (Double(hi) - Double(lo)) / Double(segments)
        var knots = (0...segments).map { Float(Double(lo) + Double($0) * step) }
        activation.apply(to: &knots, isa: .portable)
        var slopes: [Float] = [], offsets: [Float] = []
        let probes = 64
        for i in 0..<segments {
            let a = Double(lo) + Double(i) * step
            let slope = (Double(knots[i + 1]) - Double(knots[i])) / step
            var offset = Double(knots[i]) - slope * a
            var xs = (0...probes).map { Float(a + step * Double($0) / Double(probes)) }
            let line = xs.map { slope * Double($0) + offset }
            activation.apply(to: &xs, isa: .portable)
            let deviations = zip(xs, line).map { Double($0) - $1 }
            offset += ((deviations.max() ?? 0) + (deviations.min() ?? 0)) / 2
            slopes.append(Float(slope))
            offsets.append(Float(offset))
        }
        self.slopes = slopes
        self.offsets = offsets
    }

    /// Applies the table in place (vector lookup in registers on AVX-512 for ≤ 32 segments).
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int, isa: InstructionSet = .current) {
        slopes.withUnsafeBufferPointer { s in
            offsets.withUnsafeBufferPointer { o in
                ss_pwl_apply_isa(isa.cValue, s.baseAddress, o.baseAddress, Int32(segments), lo, hi, values, count)
            }
        }
    }

    public func apply(to values: inout [Float], isa: InstructionSet = .current) {
        let n = values.count
        values.withUnsafeMutableBufferPointer { apply($0.baseAddress!, count: n, isa: isa) }
    }

    /// Largest absolute difference from the exact activation over a dense sample of [lo, hi].
    public func maxAbsoluteError(samples: Int = 100_001) -> Float {
        var xs = (0..<samples).map { lo + (hi - lo) * Float($0) / Float(samples - 1) }
        var exact = xs
        activation.apply(to: &exact, isa: .portable)
        apply(to: &xs, isa: .portable)
        return zip(xs, exact).map { abs($0 - $1) }.max() ?? 0
    }
}
