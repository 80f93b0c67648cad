import CSparseKernels

/// An unstructured sparse linear layer with int8 values (one scale per output row) and per-token
/// dynamic int8 activations, in CSR form: output row `i` keeps `values[rowStart[i] ..<
/// rowStart[i+1]]` at input columns `columns[…]`; products are summed exactly in int32
/// (`csr_int8.h`). 5 bytes per kept weight (int8 value + int32 column) against CSR fp32's 8.
public final class CSRInt8Weights: QuantizedLevelOperator, PanelKernelOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let bias: [Float]?
    public let rowStart: [Int32]
    public let columns: [Int32]
    /// The kept weights, int8; `scales[i]` dequantises output row i.
    public let values: [Int8]
    public let scales: [Float]

    /// Longest row the exact int32 sums allow (`SS_CSR8_MAX_ROW_NONZEROS`).
    public static let maximumRowNonZeros = 131_071

    /// Quantizes a CSR layer's kept weights per output row (absmax / 127, nearest even, as
    /// `quantizeInt8`); the sparsity pattern is kept as it is.
    public convenience init(_ source: CSRWeights) throws {
        var q = [Int8](repeating: 0, count: source.values.count), scales = [Float](repeating: 1, count: source.outputFeatures)
        if let bad = source.values.firstIndex(where: { !$0.isFinite }) { throw QuantizationError.nonFiniteWeight(index: bad) }
        for row in 0..<source.outputFeatures {
            let span = Int(source.rowStart[row])..<Int(source.rowStart[row + 1])
            let absmax = source.values[span].reduce(Float(0)) { max($0, abs($1)) }
            let scale: Float = absmax > 0 ? absmax / 127 : 1
            scales[row] = scale
            for e in span { q[e] = Int8(max(-127, min(127, (source.values[e] / scale).rounded(.toNearestOrEven)))) }
        }
        try self.init(rowStart: source.rowStart, columns: source.columns, values: q, scales: scales,
                      outputFeatures: source.outputFeatures, inputFeatures: source.inputFeatures, bias: source.bias)
    }

    /// Takes stored CSR int8 arrays after checking them: row starts from 0, not decreasing, ending
    /// at the value count; columns in range; at most `maximumRowNonZeros` per row; one finite,
    /// positive scale per output row; bias of the output count.
    public init(rowStart: [Int32], columns: [Int32], values: [Int8], scales: [Float], outputFeatures: Int, inputFeatures: Int,
                bias: [Float]? = nil) throws {
        if let problem = CSRWeights.formatProblem(rowStart: rowStart, columns: columns, valueCount: values.count, outputFeatures: outputFeatures,
                                                  inputFeatures: inputFeatures, maximumRowLength: Self.maximumRowNonZeros) {
            throw QuantizationError.shape("csr int8: \(problem)")
        }
        try QuantizationError.checkScales(scales, expected: outputFeatures, what: "csr int8")
        try QuantizationError.checkBias(bias, outputs: outputFeatures, what: "csr int8")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        self.rowStart = rowStart
        self.columns = columns
        self.values = values
        self.scales = scales
    }

    public var storage: String { "csr int8 dynamic" }
    public var parameterCount: Int { values.count + scales.count + (bias?.count ?? 0) }
    /// Values (1 byte) and columns (4) per kept weight, row starts, scales and bias.
    public var byteCount: Int { values.count * 5 + rowStart.count * 4 + scales.count * 4 + (bias?.count ?? 0) * 4 }
    /// Sparse kernels run under dense speed: kept weights count double for the split decision.
    public var flopsPerRow: Int { 4 * values.count }

    /// The dequantised weight (values × row scale; zeros where not kept), row-major.
    public func denseWeights() -> [Float] {
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        for row in 0..<outputFeatures {
            for e in Int(rowStart[row])..<Int(rowStart[row + 1]) {
                out[row * inputFeatures + Int(columns[e])] += Float(values[e]) * scales[row]
            }
        }
        return out
    }

    /// The kernel on output panels `panels` (`PanelKernelOperator` gives the `apply` forms).
    public func runKernel(_ call: KernelCall, level: QuantizedInstructionSet, panels: Range<Int>) -> Int32 {
        let range = outputColumns(ofPanels: panels)
        return withArrays { starts, cols, vals, b in
            ss_csr8_gemm_rows_isa(level.cValue, starts, cols, vals, scales, b, outputFeatures, inputFeatures, call.x, call.inputStride,
                                  call.y, call.outputStride, call.rows, call.activation.cKind, range.lowerBound, range.upperBound)
        }
    }

    /// Calls `body` with the row starts, columns, values and bias (nil if none) in place, for the
    /// int8 CSR kernels (this one's and `CSRWeightOnlyInt8Weights`').
    func withArrays<R>(_ body: (UnsafePointer<Int32>?, UnsafePointer<Int32>?, UnsafePointer<Int8>?, UnsafePointer<Float>?) -> R) -> R {
        rowStart.withUnsafeBufferPointer { starts in
            columns.withUnsafeBufferPointer { cols in
                values.withUnsafeBufferPointer { vals in
                    withOptionalPointer(bias) { b in body(starts.baseAddress, cols.baseAddress, vals.baseAddress, b) }
                }
            }
        }
    }
}
