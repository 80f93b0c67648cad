import CSparseKernels

/// A BLAST block-factored linear layer. The weight (N × K) is split into b1 × b2 blocks (row block
/// i holds outputs `rowBlockStart(i) ..< rowBlockStart(i+1)`, column block j inputs
/// `columnBlockStart(j) ..< columnBlockStart(j+1)`; sizes differ by at most one when b does not
/// divide the dimension); block (i, j) is `U_i · diag(s_ij) · V_jᵀ` with U_i (p_i × r), V_j
/// (q_j × r) and s_ij (r values), so the layer stores r·(N + K + b1·b2) numbers instead of N·K.
///
/// It runs as three steps: a batched GEMM (`z_j = x_j V_j`), the diagonal mix (`h_i = Σ_j s_ij ⊙
/// z_j`, accumulated in registers — the b1×b2×rows×r products are never stored) and a batched GEMM
/// (`y_i = h_i U_iᵀ`) with the bias and activation fused. Both GEMM steps run on the dense kernel
/// with pre-packed factors; with a pool, steps 1 and 2+3 are each split by output panels.
public final class BlastWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let rowBlocks: Int
    public let columnBlocks: Int
    public let rank: Int
    public let bias: [Float]?
    /// How U and V are stored (fp32, bf16, int8 with dynamic activations, or weight-only int8).
    public let factorStorage: BlastFactorStorage
    /// b2 packed `V_jᵀ` (r × q_j) and b1 packed `U_i` (p_i × r), each a dense (or quantized) kernel.
    private let v: [any ColumnRangeOperator]
    private let u: [any ColumnRangeOperator]
    /// s[(i·b2 + j)·r + t].
    public let diagonals: [Float]

    public enum ShapeError: Error, CustomStringConvertible {
        case indivisible(String)
        public var description: String { switch self { case .indivisible(let s): return s } }
    }

    /// First output of row block i (i in 0...b1) and first input of column block j.
    public func rowBlockStart(_ i: Int) -> Int { i * outputFeatures / rowBlocks }
    public func columnBlockStart(_ j: Int) -> Int { j * inputFeatures / columnBlocks }

    /// - Parameters:
    ///   - u: the b1 matrices U_i (p_i × r, row-major), concatenated (N·r values).
    ///   - v: the b2 matrices V_j (q_j × r, row-major), concatenated (K·r values).
    ///   - s: b1·b2·r diagonal entries, block (i, j) at (i·b2 + j)·r.
    public convenience init(u: [Float], v: [Float], s: [Float], outputFeatures: Int, inputFeatures: Int,
                            rowBlocks b1: Int, columnBlocks b2: Int, rank r: Int, bias: [Float]? = nil) throws {
        try self.init(u: u, v: v, s: s, outputFeatures: outputFeatures, inputFeatures: inputFeatures, rowBlocks: b1,
                      columnBlocks: b2, rank: r, bias: bias, factorStorage: .fp32)
    }

    /// As above with U and V stored as `factorStorage`: fp32, bf16, int8 with dynamic activations or weight-only.
    public init(u: [Float], v: [Float], s: [Float], outputFeatures: Int, inputFeatures: Int,
                rowBlocks b1: Int, columnBlocks b2: Int, rank r: Int, bias: [Float]?,
                factorStorage: BlastFactorStorage) throws {
        guard b1 >= 1, b2 >= 1, r >= 1, outputFeatures >= b1, inputFeatures >= b2 else {
            throw ShapeError.indivisible("BLAST needs 1 ≤ b1 = \(b1) ≤ \(outputFeatures) outputs, 1 ≤ b2 = \(b2) ≤ \(inputFeatures) inputs and rank ≥ 1")
        }
        guard u.count == outputFeatures * r, v.count == inputFeatures * r, s.count == b1 * b2 * r else {
            throw ShapeError.indivisible("BlastWeights: factors have \(u.count)/\(v.count)/\(s.count) values, expected \(outputFeatures * r)/\(inputFeatures * r)/\(b1 * b2 * r)")
        }
        guard bias.map({ $0.count == outputFeatures }) ?? true else {
            throw ShapeError.indivisible("BlastWeights: bias needs \(outputFeatures) values")
        }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        rowBlocks = b1
        columnBlocks = b2
        rank = r
        self.bias = bias
        self.factorStorage = factorStorage
        diagonals = s
        let colStart = (0...b2).map { $0 * inputFeatures / b2 }
        let rowStart = (0...b1).map { $0 * outputFeatures / b1 }
        self.v = try (0..<b2).map { j in
            // V_jᵀ as an r × q_j weight (row t = column t of V_j).
            let q = colStart[j + 1] - colStart[j]
            var vt = [Float](repeating: 0, count: r * q)
            for a in 0..<q { for t in 0..<r { vt[t * q + a] = v[(colStart[j] + a) * r + t] } }
            return try factorStorage.makeOperator(weights: vt, outputs: r, inputs: q, bias: nil)
        }
        self.u = try (0..<b1).map { i in
            try factorStorage.makeOperator(weights: Array(u[(rowStart[i] * r)..<(rowStart[i + 1] * r)]), outputs: rowStart[i + 1] - rowStart[i],
                                           inputs: r, bias: bias.map { Array($0[rowStart[i]..<rowStart[i + 1]]) })
        }
    }

    public var storage: String { "blast b=\(rowBlocks)x\(columnBlocks) r=\(rank)" + (factorStorage == .fp32 ? "" : " \(factorStorage.rawValue)") }
    public var parameterCount: Int { rank * (outputFeatures + inputFeatures + rowBlocks * columnBlocks) + (bias?.count ?? 0) }
    public var byteCount: Int { v.reduce(0) { $0 + $1.byteCount } + u.reduce(0) { $0 + $1.byteCount } + diagonals.count * 4 }
    public var flopsPerRow: Int { 2 * rank * (outputFeatures + inputFeatures + rowBlocks * columnBlocks) }

    /// The dense weight the factors represent (N × K, row-major), for tests and error reports.
    public func denseWeights() -> [Float] {
        let r = rank
        var w = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        let us = u.map { $0.unpackedWeights() }, vts = v.map { $0.unpackedWeights() }
        for i in 0..<rowBlocks {
            let r0 = rowBlockStart(i), p = rowBlockStart(i + 1) - r0
            for j in 0..<columnBlocks {
                let c0 = columnBlockStart(j), q = columnBlockStart(j + 1) - c0
                for a in 0..<p {
                    for b in 0..<q {
                        var sum: Float = 0
                        for t in 0..<r { sum += us[i][a * r + t] * diagonals[(i * columnBlocks + j) * r + t] * vts[j][t * q + b] }
                        w[(r0 + a) * inputFeatures + c0 + b] = sum
                    }
                }
            }
        }
        return w
    }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let b1 = rowBlocks, b2 = columnBlocks, r = rank
        let split = pool?.shouldSplit(flops: Double(rows * flopsPerRow), rows: rows) ?? false
        if split && applySplitByTokens(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride,
                                       activation: activation, pool: pool, isa: isa) { return }
        let pool = pool ?? KernelPool.serial
        // Step 1: z_j = x_j V_j for every input block j; z is rows × (b2·r). Units: (block, r-panel).
        // z lives in the caller's scratch (slot 3) for the whole call; parts write and read it.
        guard let z = ss_thread_scratch(3, rows * b2 * r) else { fatalError("BlastWeights: out of memory") }
        let xs = UnsafeSendablePointer(x), zs = UnsafeSendableMutablePointer(z), ys = UnsafeSendableMutablePointer(y)
        let rPanels = (r + 15) / 16
        pool.forEachRange(units: b2 * rPanels, split: split) { [self] units in
            var unit = units.lowerBound
            while unit < units.upperBound {
                let j = unit / rPanels, first = unit % rPanels
                let last = min(rPanels, first + (units.upperBound - unit))
                v[j].apply(xs.pointer + columnBlockStart(j), rows: rows, inputStride: inputStride, into: zs.pointer + j * r,
                           outputStride: b2 * r, activation: .none, outputColumns: (first * 16)..<min(r, last * 16), isa: isa)
                unit += last - first
            }
        }
        // Steps 2 and 3 per output block i: h_i = Σ_j s_ij ⊙ z_j (rows × r), then y_i = h_i U_iᵀ with
        // bias and activation. Units: (block, output panel); a part mixes each block it touches once.
        let panelCounts = u.map { ($0.outputFeatures + 15) / 16 }
        let panelStart = panelCounts.reduce(into: [0]) { $0.append($0.last! + $1) }
        pool.forEachRange(units: panelStart[b1], split: split) { [self] units in
            guard let h = ss_thread_scratch(2, rows * r) else { fatalError("BlastWeights: out of memory") }
            for i in 0..<b1 {
                let first = max(units.lowerBound, panelStart[i]) - panelStart[i]
                let last = min(units.upperBound, panelStart[i + 1]) - panelStart[i]
                guard first < last else { continue }
                diagonals.withUnsafeBufferPointer { s in
                    ss_blast_mix_blocks_isa(isa.cValue, zs.pointer, b2 * r, rows, 1, Int32(b2), r,
                                            s.baseAddress! + i * b2 * r, h, r, 0, 1)
                }
                let p = u[i].outputFeatures
                u[i].apply(h, rows: rows, inputStride: r, into: ys.pointer + rowBlockStart(i), outputStride: outputStride,
                           activation: activation, outputColumns: (first * 16)..<min(p, last * 16), isa: isa)
            }
        }
    }
}
