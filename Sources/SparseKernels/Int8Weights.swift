import CSparseKernels

/// A linear layer with int8 weights and fp32 activations (weight-only quantization): scales per
/// output row or per row and group of inputs; the kernel widens the int8 weights to fp32 in
/// registers, so a batch-1 call streams a quarter of the fp32 bytes (`int8.h`, "W8").
public final class Int8Weights: ColumnKernelOperator, @unchecked Sendable {
    public typealias KernelLevel = InstructionSet
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let granularity: Int8Granularity
    public let bias: [Float]?
    /// Row-major int8 weights, `outputFeatures × inputFeatures`.
    public let values: [Int8]
    /// Row-major scales, `outputFeatures × granularity.scalesPerRow(inputFeatures:)`.
    public let scales: [Float]
    private let packed: AlignedBuffer<Int8>
    private let packedScales: AlignedBuffer<Float>

    /// Quantizes fp32 weights.
    public convenience init(weights: [Float], outputFeatures: Int, inputFeatures: Int, granularity: Int8Granularity,
                            bias: [Float]? = nil) throws {
        let (q, s) = try quantizeInt8(weights, rows: outputFeatures, columns: inputFeatures, granularity: granularity)
        try self.init(values: q, scales: s, outputFeatures: outputFeatures, inputFeatures: inputFeatures,
                      granularity: granularity, bias: bias)
    }

    /// Takes stored int8 values and scales after checking them.
    public init(values: [Int8], scales: [Float], outputFeatures: Int, inputFeatures: Int, granularity: Int8Granularity,
                bias: [Float]? = nil) throws {
        guard outputFeatures > 0, inputFeatures > 0, values.count == outputFeatures * inputFeatures else {
            throw QuantizationError.shape("int8: \(values.count) values for a \(outputFeatures)×\(inputFeatures) matrix")
        }
        if case .group(let width) = granularity, width <= 0 { throw QuantizationError.invalidGroup(width) }
        let perRow = granularity.scalesPerRow(inputFeatures: inputFeatures)
        try QuantizationError.checkScales(scales, expected: outputFeatures * perRow, what: "int8 \(granularity)")
        try QuantizationError.checkBias(bias, outputs: outputFeatures, what: "int8")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.granularity = granularity
        self.bias = bias
        self.values = values
        self.scales = scales
        packed = AlignedBuffer(count: ss_w8_packed_bytes(outputFeatures, inputFeatures), zeroed: 0)
        packedScales = AlignedBuffer(count: ss_w8_scale_count(outputFeatures, inputFeatures, granularity.cGroup), zeroed: 0)
        let status = ss_w8_pack(values, scales, outputFeatures, inputFeatures, inputFeatures, granularity.cGroup,
                                packed.pointer, packedScales.pointer)
        try KernelError.check(status, "int8 pack")
    }

    public var storage: String { "int8 \(granularity)" }
    public var parameterCount: Int { values.count + scales.count + (bias?.count ?? 0) }
    public var byteCount: Int { packed.byteCount + packedScales.byteCount + (bias?.count ?? 0) * 4 }

    /// The weight the kernel multiplies by, dequantised, row-major.
    public func denseWeights() -> [Float] {
        let perRow = granularity.scalesPerRow(inputFeatures: inputFeatures), width = granularity.cGroup
        return (0..<values.count).map { i in
            let row = i / inputFeatures, column = i % inputFeatures
            return Float(values[i]) * scales[row * perRow + (width == 0 ? 0 : column / width)]
        }
    }

    /// The kernel on output columns `columns` (`ColumnKernelOperator` gives both `apply` forms;
    /// the column-range one serves BLAST's weight-only int8 factors).
    public func runKernel(_ call: KernelCall, level: InstructionSet, columns: Range<Int>) -> Int32 {
        withOptionalPointer(bias) { b in
            ss_w8_gemm_cols_isa(level.cValue, packed.pointer, packedScales.pointer, granularity.cGroup, b, outputFeatures, inputFeatures,
                                call.x, call.inputStride, call.y, call.outputStride, call.rows, call.activation.cKind,
                                columns.lowerBound, columns.upperBound)
        }
    }
}
