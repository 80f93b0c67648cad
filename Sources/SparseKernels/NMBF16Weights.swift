import CSparseKernels

/// An N:M-sparse linear layer with bf16 values (the `NMWeights` pack with every kept weight
/// rounded to bf16): half the value bytes, widened to fp32 in registers by the in-register-selection
/// kernel, which runs every row (up to 8 rows per decode, 16 for m = 4 from 9 rows; `nm.h`, no bf16 weight-broadcast GEMM).
public final class NMBF16Weights: PanelKernelOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let n: Int
    public let m: Int
    public let bias: [Float]?
    private let values: AlignedBuffer<UInt16>
    private let indices: AlignedBuffer<UInt64>
    private let nonZeroCount: Int

    /// Rounds the kept weights of an N:M pack to bf16 (nearest even); same mask and positions.
    public init(_ source: NMWeights) throws {
        let packed = source.packedValues
        if let bad = packed.firstIndex(where: { !$0.isFinite }) { throw QuantizationError.nonFiniteWeight(index: bad) }
        inputFeatures = source.inputFeatures
        outputFeatures = source.outputFeatures
        n = source.n
        m = source.m
        bias = source.bias
        nonZeroCount = source.nonZeroCount
        values = AlignedBuffer(packed.map { ss_bf16_from_float($0) }, zero: 0)
        indices = NMWeightOnlyInt8Weights.indexBuffer(source.packedIndexWords, m: m)
    }

    public var storage: String { "nm \(n):\(m) bf16" }
    public var parameterCount: Int { nonZeroCount + (bias?.count ?? 0) }
    public var byteCount: Int {
        values.byteCount + ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m)) * (m == 4 ? 4 : 8)
            + (bias?.count ?? 0) * 4
    }
    public var flopsPerRow: Int { 2 * ((outputFeatures + 15) / 16 * 16) * ((inputFeatures + m - 1) / m) * n }

    /// The weight as fp32 (the bf16 values, zeros where pruned), row-major.
    public func denseWeights() -> [Float] {
        let floats = (0..<values.count).map { Float(bitPattern: UInt32(values.pointer[$0]) << 16) }
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        out.withUnsafeMutableBufferPointer {
            ss_nm_unpack(floats, UnsafeRawPointer(indices.pointer), outputFeatures, inputFeatures, Int32(n), Int32(m),
                         $0.baseAddress, inputFeatures)
        }
        return out
    }

    /// The kernel on output panels `panels` (`PanelKernelOperator` gives the `apply` forms).
    public func runKernel(_ call: KernelCall, level: InstructionSet, panels: Range<Int>) -> Int32 {
        withOptionalPointer(bias) { b in
            ss_nm_bf16_gemv_panels_isa(level.cValue, values.pointer, UnsafeRawPointer(indices.pointer), Int32(n), Int32(m), b,
                                       outputFeatures, inputFeatures, call.x, call.inputStride, call.y, call.outputStride, call.rows,
                                       call.activation.cKind, panels.lowerBound, panels.upperBound)
        }
    }
}
