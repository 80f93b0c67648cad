import CSparseKernels

/// A 2:4-sparse linear layer with int8 weights (one scale per output row) and per-token dynamic
/// int8 activations: values with 2-bit in-group positions, 0.625 bytes per dense weight
/// (`nm_int8.h`). One token row runs the GEMV (in-register position decode); two or more run the
/// batched kernel on the AVX-512 dot level (byte indices expanded once here, `vpermb` + `vpdpbusd`
/// over token tiles), the GEMV elsewhere.
public final class NMInt8Weights: QuantizedLevelOperator, PanelKernelOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let bias: [Float]?
    /// Row-major int8 weights with the pruned ones zero (what artifacts store), and row scales.
    public let values: [Int8]
    public let scales: [Float]
    private let packedValues: AlignedBuffer<Int8>
    private let codes: AlignedBuffer<UInt8>
    /// The batched kernel's window byte indices, expanded from `codes` (not stored in artifacts).
    private let indices: AlignedBuffer<UInt8>
    private let correction: AlignedBuffer<Int32>
    private let paddedScales: AlignedBuffer<Float>

    /// Keeps the 2 largest magnitudes of every group of 4 inputs, then quantizes per output row.
    public convenience init(magnitudePruning weights: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) throws {
        guard weights.count == outputFeatures * inputFeatures else {
            throw QuantizationError.shape("2:4 int8: \(weights.count) weights for a \(outputFeatures)×\(inputFeatures) matrix")
        }
        let pruned = NMWeights.magnitudeMask(weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: 2, m: 4)
        let (q, s) = try quantizeInt8(pruned, rows: outputFeatures, columns: inputFeatures, granularity: .channel)
        try self.init(values: q, scales: s, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
    }

    /// The same layer as dense W8A8 (`Int8DynamicWeights` of these int8 values, zeros included,
    /// and scales): the same int32 sums and outputs, and AMX tiles where the CPU has them.
    public func denseInt8Form() throws -> Int8DynamicWeights {
        try Int8DynamicWeights(values: values, scales: scales, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
    }

    /// Takes int8 values that are already 2:4 (at most 2 non-zeros per group of 4) and row scales.
    public init(values: [Int8], scales: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) throws {
        try QuantizationError.checkRowScaled(values: values.count, scales: scales, bias: bias, outputs: outputFeatures,
                                             inputs: inputFeatures, what: "2:4 int8")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        self.values = values
        self.scales = scales
        let rows = ss_q8_padded_rows(outputFeatures)
        packedValues = AlignedBuffer(count: ss_nm8_value_bytes(outputFeatures, inputFeatures), zeroed: 0)
        codes = AlignedBuffer(count: ss_nm8_code_bytes(outputFeatures, inputFeatures), zeroed: 0)
        correction = AlignedBuffer(count: rows, zeroed: 0)
        paddedScales = .paddedRows(scales, outputs: outputFeatures)
        let status = ss_nm8_pack(values, outputFeatures, inputFeatures, inputFeatures, packedValues.pointer, codes.pointer,
                                 correction.pointer)
        if status != 0 { throw QuantizationError.shape("2:4 int8: a group of 4 inputs holds more than 2 non-zero weights") }
        indices = AlignedBuffer(count: ss_nm8_index_bytes(outputFeatures, inputFeatures), zeroed: 0)
        ss_nm8_expand_indices(codes.pointer, outputFeatures, inputFeatures, indices.pointer)
    }

    public var storage: String { "nm 2:4 int8 dynamic" }
    public var parameterCount: Int { values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } + scales.count + (bias?.count ?? 0) }
    /// Packed values and 2-bit positions, row corrections and scales, bias (the in-memory expanded
    /// indices of the batched kernel are not counted: they are not part of the format).
    public var byteCount: Int {
        packedValues.byteCount + codes.byteCount + correction.byteCount + paddedScales.byteCount + (bias?.count ?? 0) * 4
    }
    public var flopsPerRow: Int { inputFeatures * outputFeatures / 3 }

    /// The dequantised weight (zeros where pruned), row-major.
    public func denseWeights() -> [Float] {
        (0..<values.count).map { Float(values[$0]) * scales[$0 / inputFeatures] }
    }

    /// Split across `pool` (when the call is large enough) by token rows when there are enough
    /// rows (`applySplitByTokenRows`: each thread quantizes its own); else,
    /// on the AVX-512 dot level (the batched kernel), by output panels with each chunk of rows quantized once and the bytes
    /// shared (`applySharingQuantization`); else by output panels, each part quantizing the rows
    /// itself. Same outputs every way.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, level: QuantizedInstructionSet) {
        let call = KernelCall(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation)
        guard let pool, rows >= 2, splits(rows: rows, pool: pool) else { return applyByPanels(call, level: level, pool: pool) }
        if applySplitByTokenRows(call, level: level, pool: pool) { return }
        guard ss_clamp_qisa(level.cValue).rawValue >= SS_QISA_AVX512_DOT.rawValue else { return applyByPanels(call, level: level, pool: pool) }
        applySharingQuantization(call, pool: pool, rowBytes: ss_nm8_quantized_row_bytes(inputFeatures), quantize: { x, m, xq, xs in
            ss_nm8_quantize_rows_isa(level.cValue, x, call.inputStride, m, self.inputFeatures, xq, xs)
        }, kernel: { [self] rows, columns in
            withOptionalPointer(bias) { b in
                ss_nm8_gemm_quantized_indexed_cols_isa(level.cValue, packedValues.pointer, indices.pointer, correction.pointer,
                                                       paddedScales.pointer, b, outputFeatures, inputFeatures, rows.bytes, rows.scales,
                                                       rows.count, rows.y, call.outputStride, call.activation.cKind,
                                                       columns.lowerBound, columns.upperBound)
            }
        })
    }

    /// The kernel on output panels `panels` (`PanelKernelOperator` gives the `apply` forms).
    public func runKernel(_ call: KernelCall, level: QuantizedInstructionSet, panels: Range<Int>) -> Int32 {
        let columns = outputColumns(ofPanels: panels)
        return withOptionalPointer(bias) { b in
            ss_nm8_gemm_indexed_cols_isa(level.cValue, packedValues.pointer, codes.pointer, indices.pointer, correction.pointer,
                                         paddedScales.pointer, b, outputFeatures, inputFeatures, call.x, call.inputStride,
                                         call.rows, call.y, call.outputStride, call.activation.cKind, columns.lowerBound,
                                         columns.upperBound)
        }
    }
}
