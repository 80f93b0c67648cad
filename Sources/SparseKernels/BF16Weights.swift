import CSparseKernels

/// A linear layer with bf16 weights and fp32 activations: `vdpbf16ps` (inputs rounded to bf16)
/// where the CPU has AVX512-BF16, else the weights widened to fp32 in registers (`bf16.h`).
public final class BF16Weights: QuantizedLevelOperator, ColumnKernelOperator, @unchecked Sendable {
    public typealias KernelLevel = QuantizedInstructionSet
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let bias: [Float]?
    /// Row-major bf16 bit patterns, `outputFeatures × inputFeatures` (what artifacts store).
    public let bits: [UInt16]
    private let packed: AlignedBuffer<UInt16>

    /// Rounds fp32 weights to bf16 (nearest even).
    public convenience init(weights: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) throws {
        if let bad = weights.firstIndex(where: { !$0.isFinite }) { throw QuantizationError.nonFiniteWeight(index: bad) }
        try self.init(bits: weights.map { ss_bf16_from_float($0) }, outputFeatures: outputFeatures,
                      inputFeatures: inputFeatures, bias: bias)
    }

    /// Takes stored bf16 bit patterns after checking them (count; every value finite).
    public init(bits: [UInt16], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) throws {
        guard outputFeatures > 0, inputFeatures > 0, bits.count == outputFeatures * inputFeatures else {
            throw QuantizationError.shape("bf16: \(bits.count) values for a \(outputFeatures)×\(inputFeatures) matrix")
        }
        if let bad = bits.firstIndex(where: { $0 & 0x7F80 == 0x7F80 }) { throw QuantizationError.nonFiniteWeight(index: bad) }
        try QuantizationError.checkBias(bias, outputs: outputFeatures, what: "bf16")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        self.bits = bits
        packed = AlignedBuffer(count: ss_bf16_packed_count(outputFeatures, inputFeatures), zeroed: 0)
        try KernelError.check(ss_bf16_pack_bits(bits, outputFeatures, inputFeatures, inputFeatures, packed.pointer), "bf16 pack")
    }

    public var storage: String { "bf16" }
    public var parameterCount: Int { bits.count + (bias?.count ?? 0) }
    public var byteCount: Int { packed.byteCount + (bias?.count ?? 0) * 4 }
    /// `vdpbf16ps` runs about twice the fp32 FMA rate: its work counts half for splitting.
    public var flopsPerRow: Int { inputFeatures * outputFeatures }

    /// The weight as fp32, row-major.
    public func denseWeights() -> [Float] { bits.map { Float(bitPattern: UInt32($0) << 16) } }

    /// Split across `pool` by output panels (`applyByPanels`), or on AMX tiles by token rows in
    /// whole 16-row blocks, each part rounding only its own rows (`applyOnAMXTiles`).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, level: QuantizedInstructionSet) {
        let call = KernelCall(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation)
        if level.runsAMXTiles(rows: rows, rowBytes: 4 * ((inputFeatures + 1) / 2)) {
            return applyOnAMXTiles(call, level: level, pool: pool, costFactor: 1.0 / 4)
        }
        applyByPanels(call, level: level, pool: pool)
    }

    /// The kernel on output columns `columns` (`ColumnKernelOperator` gives both `apply` forms).
    public func runKernel(_ call: KernelCall, level: QuantizedInstructionSet, columns: Range<Int>) -> Int32 {
        withOptionalPointer(bias) { b in
            ss_bf16_gemm_cols_isa(level.cValue, packed.pointer, b, outputFeatures, inputFeatures, call.x, call.inputStride, call.y,
                                  call.outputStride, call.rows, call.activation.cKind, columns.lowerBound, columns.upperBound)
        }
    }
}
