import CSparseKernels

/// A linear layer with int8 weights (one scale per output row) that quantizes each input row to
/// int8 at call time (its own scale, absmax / 127) and multiplies in int32: VNNI `vpdpbusd` where
/// the CPU has it (layout and exactness in `int8.h`). ONNX Runtime's dynamic quantization.
public final class Int8DynamicWeights: QuantizedLevelOperator, ColumnKernelOperator, @unchecked Sendable {
    public typealias KernelLevel = QuantizedInstructionSet
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let bias: [Float]?
    /// Row-major int8 weights, `outputFeatures × inputFeatures` (what artifacts store).
    public let values: [Int8]
    /// One scale per output row.
    public let scales: [Float]
    private let packed: AlignedBuffer<Int8>
    private let correction: AlignedBuffer<Int32>
    private let paddedScales: AlignedBuffer<Float>

    /// Quantizes fp32 weights per output row.
    public convenience init(weights: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) throws {
        let (q, s) = try quantizeInt8(weights, rows: outputFeatures, columns: inputFeatures, granularity: .channel)
        try self.init(values: q, scales: s, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
    }

    /// Takes stored int8 values and scales after checking them (counts; scales finite and > 0).
    public init(values: [Int8], scales: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) throws {
        try QuantizationError.checkRowScaled(values: values.count, scales: scales, bias: bias, outputs: outputFeatures,
                                             inputs: inputFeatures, what: "int8")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        self.values = values
        self.scales = scales
        let rows = ss_q8_padded_rows(outputFeatures)
        packed = AlignedBuffer(count: ss_q8_packed_bytes(outputFeatures, inputFeatures), zeroed: 0)
        correction = AlignedBuffer(count: rows, zeroed: 0)
        paddedScales = .paddedRows(scales, outputs: outputFeatures)
        let status = ss_q8_pack(values, outputFeatures, inputFeatures, inputFeatures, packed.pointer, correction.pointer)
        try KernelError.check(status, "int8 pack")
    }

    public var storage: String { "int8 dynamic" }
    public var parameterCount: Int { values.count + scales.count + (bias?.count ?? 0) }
    /// Packed int8 panels, their row corrections and scales, plus the bias.
    public var byteCount: Int { packed.byteCount + correction.byteCount + paddedScales.byteCount + (bias?.count ?? 0) * 4 }
    /// The int8 kernel runs about three times the fp32 rate: its work counts a third for splitting.
    public var flopsPerRow: Int { 2 * inputFeatures * outputFeatures / 3 }

    /// The weight the kernel multiplies by, dequantised (values × row scale), row-major.
    public func denseWeights() -> [Float] {
        (0..<values.count).map { Float(values[$0]) * scales[$0 / inputFeatures] }
    }

    /// Split across `pool` (when the call is large enough) by token rows when there are enough
    /// rows (`applySplitByTokenRows`: each thread quantizes its own), else
    /// by output panels with each chunk of rows quantized once and the bytes shared
    /// (`applySharingQuantization`). Same outputs as unsplit.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, level: QuantizedInstructionSet) {
        let call = KernelCall(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation)
        if level.runsAMXTiles(rows: rows, rowBytes: ss_q8_row_bytes(inputFeatures)) {
            return applyOnAMXTiles(call, level: level, pool: pool, costFactor: 1.0 / 3)
        }
        guard let pool, rows > 0, splits(rows: rows, pool: pool) else { return applyByPanels(call, level: level, pool: pool) }
        if applySplitByTokenRows(call, level: level, pool: pool) { return }
        applySharingQuantization(call, pool: pool, rowBytes: ss_q8_row_bytes(inputFeatures), quantize: { x, m, xq, xs in
            ss_q8_quantize_rows_isa(level.cValue, x, call.inputStride, m, self.inputFeatures, xq, xs)
        }, kernel: { [self] rows, columns in
            withOptionalPointer(bias) { b in
                ss_q8_gemm_quantized_cols_isa(level.cValue, packed.pointer, correction.pointer, paddedScales.pointer, b, outputFeatures,
                                              inputFeatures, rows.bytes, rows.scales, rows.count, rows.y, call.outputStride,
                                              call.activation.cKind, columns.lowerBound, columns.upperBound)
            }
        })
    }

    /// The kernel on output columns `columns` (`ColumnKernelOperator` gives both `apply` forms).
    public func runKernel(_ call: KernelCall, level: QuantizedInstructionSet, columns: Range<Int>) -> Int32 {
        withOptionalPointer(bias) { b in
            ss_q8_gemm_cols_isa(level.cValue, packed.pointer, correction.pointer, paddedScales.pointer, b, outputFeatures, inputFeatures,
                                call.x, call.inputStride, call.rows, call.y, call.outputStride, call.activation.cKind,
                                columns.lowerBound, columns.upperBound)
        }
    }
}
