import CSparseKernels

/// An N:M-sparse linear layer: in every group of `m` consecutive inputs, each output row keeps at
/// most `n` weights (m ∈ {4, 8, 16}, 1 ≤ n < m). Values are packed in 16-row panels with 2-bit
/// (m = 4) or 4-bit (m = 8, 16) in-group positions; see `sparse.h`.
public final class NMWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let n: Int
    public let m: Int
    public let bias: [Float]?
    private let values: UnsafeMutablePointer<Float>
    private let valueCount: Int
    private let indices: UnsafeMutableRawPointer
    private let indexBytes: Int
    /// Non-zero weights actually kept (≤ n/m of the dense count).
    public let nonZeroCount: Int
    /// The same weights row by row (CSR) for batches of 3+ rows, where the weight-broadcast ×
    /// activation-vector kernel over Xᵀ beats in-register selection.
    private let rowwise: CSRWeights

    public enum PackError: Error, Equatable, CustomStringConvertible {
        case unsupported(n: Int, m: Int)
        case tooManyNonZeros(n: Int, m: Int)
        public var description: String {
            switch self {
            case let .unsupported(n, m): return "\(n):\(m) sparsity is not supported (m must be 4, 8 or 16 and 1 ≤ n < m)"
            case let .tooManyNonZeros(n, m): return "a group of \(m) inputs holds more than \(n) non-zero weights"
            }
        }
    }

    /// Packs a row-major `outputFeatures × inputFeatures` weight that is already N:M-sparse.
    public init(prunedWeights weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int, bias: [Float]? = nil) throws {
        precondition(weights.count == outputFeatures * inputFeatures, "NMWeights: weight count does not match the shape")
        precondition(bias.map { $0.count == outputFeatures } ?? true, "NMWeights: bias needs \(outputFeatures) values")
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.n = n
        self.m = m
        self.bias = bias
        valueCount = ss_nm_value_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        let words = ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        indexBytes = words * (m == 4 ? 4 : 8)
        let packedValues = UnsafeMutableRawPointer.allocate(byteCount: max(1, valueCount) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, valueCount))
        let packedIndices = UnsafeMutableRawPointer.allocate(byteCount: max(8, indexBytes), alignment: 64)
        let status = weights.withUnsafeBufferPointer {
            ss_nm_pack($0.baseAddress, outputFeatures, inputFeatures, inputFeatures, Int32(n), Int32(m), packedValues, packedIndices)
        }
        if status != 0 {
            packedValues.deallocate()
            packedIndices.deallocate()
            throw PackError.tooManyNonZeros(n: n, m: m)
        }
        values = packedValues
        indices = packedIndices
        nonZeroCount = weights.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        rowwise = CSRWeights(weights: weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
    }

    /// Keeps the `n` largest-magnitude weights of every group of `m` inputs (ties: lower index).
    public convenience init(magnitudePruning weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int, bias: [Float]? = nil) throws {
        try self.init(prunedWeights: NMWeights.magnitudeMask(weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m),
                      outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m, bias: bias)
    }

    deinit {
        values.deallocate()
        indices.deallocate()
    }

    /// `weights` with all but the `n` largest magnitudes of each group of `m` set to zero.
    public static func magnitudeMask(_ weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int) -> [Float] {
        var out = weights
        for row in 0..<outputFeatures {
            var g = 0
            while g < inputFeatures {
                let end = min(g + m, inputFeatures)
                let order = (g..<end).sorted { abs(weights[row * inputFeatures + $0]) > abs(weights[row * inputFeatures + $1]) }
                for col in order.dropFirst(n) { out[row * inputFeatures + col] = 0 }
                g = end
            }
        }
        return out
    }

    public var storage: String { "nm \(n):\(m)" }
    public var parameterCount: Int { nonZeroCount + (bias?.count ?? 0) }
    /// Both layouts: the panel pack (GEMV) and the row-wise copy (GEMM).
    public var byteCount: Int { valueCount * 4 + indexBytes + (bias?.count ?? 0) * 4 + rowwise.byteCount }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, isa: InstructionSet = .current) {
        if rows > 2 { return rowwise.apply(x, rows: rows, into: y, activation: activation, isa: isa) }
        withOptionalPointer(bias) { b in
            ss_nm_gemm_isa(isa.cValue, values, indices, Int32(n), Int32(m), b, outputFeatures, inputFeatures,
                           x, inputFeatures, y, outputFeatures, rows, activation.cKind, nil)
        }
    }

    /// The weight back as a dense row-major matrix (zeros where pruned).
    public func denseWeights() -> [Float] {
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        let groups = (inputFeatures + m - 1) / m
        for row in 0..<outputFeatures {
            let p = row / 16, j = row % 16
            for g in 0..<groups {
                for s in 0..<n {
                    let word = (p * groups + g) * n + s
                    let v = values[word * 16 + j]
                    let c: Int
                    if m == 4 {
                        c = Int((indices.load(fromByteOffset: word * 4, as: UInt32.self) >> UInt32(2 * j)) & 3)
                    } else {
                        c = Int((indices.load(fromByteOffset: word * 8, as: UInt64.self) >> UInt64(4 * j)) & 15)
                    }
                    let col = g * m + c
                    if col < inputFeatures && v != 0 { out[row * inputFeatures + col] = v }
                }
            }
        }
        return out
    }
}

/// An unstructured sparse linear layer in CSR form (the magnitude-pruning baseline).
public final class CSRWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let bias: [Float]?
    public let rowStart: [Int32]
    public let columns: [Int32]
    public let values: [Float]

    /// Keeps the non-zeros of a row-major `outputFeatures × inputFeatures` weight.
    public init(weights: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) {
        precondition(weights.count == outputFeatures * inputFeatures, "CSRWeights: weight count does not match the shape")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        var starts: [Int32] = [0], cols: [Int32] = [], vals: [Float] = []
        for row in 0..<outputFeatures {
            for col in 0..<inputFeatures where weights[row * inputFeatures + col] != 0 {
                cols.append(Int32(col))
                vals.append(weights[row * inputFeatures + col])
            }
            starts.append(Int32(vals.count))
        }
        rowStart = starts
        columns = cols
        values = vals
    }

    /// Keeps the `density` fraction of largest-magnitude weights of the whole matrix.
    public convenience init(magnitudePruning weights: [Float], outputFeatures: Int, inputFeatures: Int, density: Double, bias: [Float]? = nil) {
        let keep = max(0, min(weights.count, Int((Double(weights.count) * density).rounded())))
        var pruned = [Float](repeating: 0, count: weights.count)
        if keep > 0 {
            let threshold = weights.map(abs).sorted(by: >)[keep - 1]
            var kept = 0
            for i in weights.indices where abs(weights[i]) >= threshold && kept < keep {
                pruned[i] = weights[i]
                kept += 1
            }
        }
        self.init(weights: pruned, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
    }

    public var storage: String { "csr" }
    public var parameterCount: Int { values.count + (bias?.count ?? 0) }
    public var byteCount: Int { values.count * 8 + rowStart.count * 4 + (bias?.count ?? 0) * 4 }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, isa: InstructionSet = .current) {
        rowStart.withUnsafeBufferPointer { starts in
            columns.withUnsafeBufferPointer { cols in
                values.withUnsafeBufferPointer { vals in
                    withOptionalPointer(bias) { b in
                        ss_csr_gemm_isa(isa.cValue, starts.baseAddress, cols.baseAddress, vals.baseAddress, b,
                                        outputFeatures, inputFeatures, x, inputFeatures, y, outputFeatures, rows,
                                        activation.cKind, nil)
                    }
                }
            }
        }
    }
}
