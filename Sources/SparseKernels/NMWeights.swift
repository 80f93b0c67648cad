import CSparseKernels

/// An N:M-sparse linear layer: in every group of `m` consecutive inputs, each output row keeps at
/// most `n` weights (m ∈ {4, 8, 16}, 1 ≤ n < m). Values are packed in 16-row panels with 2-bit
/// (m = 4) or 4-bit (m = 8, 16) in-group positions (layout in `nm.h`); one copy serves both the
/// batch-1 kernel (in-register selection) and the batched one (weight broadcast).
public final class NMWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let n: Int
    public let m: Int
    public let bias: [Float]?
    private let values: AlignedBuffer<Float>
    private let indices: AlignedBuffer<UInt64>
    /// Non-zero weights actually kept (≤ n/m of the dense count).
    public let nonZeroCount: Int

    public enum PackError: Error, Equatable, CustomStringConvertible {
        case unsupported(n: Int, m: Int)
        case tooManyNonZeros(n: Int, m: Int)
        case shape(String)
        public var description: String {
            switch self {
            case let .unsupported(n, m): return "\(n):\(m) sparsity is not supported (m must be 4, 8 or 16 and 1 ≤ n < m)"
            case let .tooManyNonZeros(n, m): return "a group of \(m) inputs holds more than \(n) non-zero weights"
            case let .shape(message): return message
            }
        }
    }

    /// Packs a row-major `outputFeatures × inputFeatures` weight that is already N:M-sparse (zeros
    /// are pruned weights). Throws when a group of `m` holds more than `n` non-zeros.
    public init(prunedWeights weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int, bias: [Float]? = nil) throws {
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        guard outputFeatures > 0, inputFeatures > 0, weights.count == outputFeatures * inputFeatures else {
            throw PackError.shape("NMWeights: \(weights.count) weights for a \(outputFeatures)×\(inputFeatures) matrix")
        }
        guard bias.map({ $0.count == outputFeatures }) ?? true else {
            throw PackError.shape("NMWeights: bias needs \(outputFeatures) values")
        }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.n = n
        self.m = m
        self.bias = bias
        let valueCount = ss_nm_value_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        let words = ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m))
        let packedValues = AlignedBuffer<Float>(count: valueCount, zeroed: 0)
        // m = 4 uses 32-bit words: half of this buffer.
        let packedIndices = AlignedBuffer<UInt64>(count: m == 4 ? (words + 1) / 2 : words, zeroed: 0)
        let status = weights.withUnsafeBufferPointer {
            ss_nm_pack($0.baseAddress, outputFeatures, inputFeatures, inputFeatures, Int32(n), Int32(m),
                       packedValues.pointer, UnsafeMutableRawPointer(packedIndices.pointer))
        }
        if status != 0 { throw PackError.tooManyNonZeros(n: n, m: m) }
        values = packedValues
        indices = packedIndices
        nonZeroCount = weights.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    }

    /// Keeps the weights where `mask` is true (an already chosen N:M mask, e.g. from TSENOR).
    public convenience init(weights: [Float], mask: [Bool], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int,
                            bias: [Float]? = nil) throws {
        guard mask.count == weights.count else {
            throw PackError.shape("NMWeights: mask has \(mask.count) entries for \(weights.count) weights")
        }
        try self.init(prunedWeights: zip(weights, mask).map { $1 ? $0 : 0 }, outputFeatures: outputFeatures,
                      inputFeatures: inputFeatures, n: n, m: m, bias: bias)
    }

    /// Keeps the `n` largest-magnitude weights of every group of `m` inputs (ties: lower index).
    public convenience init(magnitudePruning weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int, bias: [Float]? = nil) throws {
        guard [4, 8, 16].contains(m), n >= 1, n < m else { throw PackError.unsupported(n: n, m: m) }
        try self.init(prunedWeights: NMWeights.magnitudeMask(weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m),
                      outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m, bias: bias)
    }

    /// `weights` with all but the `n` largest magnitudes of each group of `m` set to zero.
    public static func magnitudeMask(_ weights: [Float], outputFeatures: Int, inputFeatures: Int, n: Int, m: Int) -> [Float] {
        precondition(weights.count == outputFeatures * inputFeatures, "magnitudeMask: weight count does not match the shape")
        var out = weights
        for row in 0..<outputFeatures {
            var g = 0
            while g < inputFeatures {
                let end = min(g + m, inputFeatures)
                let order = (g..<end).sorted {
                    let a = abs(weights[row * inputFeatures + $0]), b = abs(weights[row * inputFeatures + $1])
                    return a != b ? a > b : $0 < $1
                }
                for col in order.dropFirst(n) { out[row * inputFeatures + col] = 0 }
                g = end
            }
        }
        return out
    }

    public var storage: String { "nm \(n):\(m)" }
    public var parameterCount: Int { nonZeroCount + (bias?.count ?? 0) }
    /// Packed values (rows padded to 16, every slot stored) + index words + bias.
    public var byteCount: Int {
        values.byteCount + ss_nm_index_count(outputFeatures, inputFeatures, Int32(n), Int32(m)) * (m == 4 ? 4 : 8)
            + (bias?.count ?? 0) * 4
    }
    public var flopsPerRow: Int {
        2 * ((outputFeatures + 15) / 16 * 16) * ((inputFeatures + m - 1) / m) * n
    }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let split = splits(rows: rows, pool: pool)
        // A split batched call transposes its input once, on the caller, for all parts.
        let prepared: UnsafeSendablePointer? = split ? prepareInput(x, rows: rows, inputStride: inputStride, isa: isa) : nil
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        forEachPanelRange(split: split, pool: pool) { [self] range in
            withOptionalPointer(bias) { b in
                let v = values.pointer, i = UnsafeRawPointer(indices.pointer)
                if let xt = prepared {
                    ss_nm_gemm_prepared_panels_isa(isa.cValue, v, i, Int32(n), Int32(m), b, outputFeatures, inputFeatures, xs.pointer,
                                                   inputStride, xt.pointer, ys.pointer, outputStride, rows, activation.cKind,
                                                   range.lowerBound, range.upperBound)
                } else {
                    ss_nm_gemm_panels_isa(isa.cValue, v, i, Int32(n), Int32(m), b, outputFeatures, inputFeatures, xs.pointer,
                                          inputStride, ys.pointer, outputStride, rows, activation.cKind, range.lowerBound, range.upperBound)
                }
            }
        }
    }

    /// The batched kernel's transposed input in the caller's scratch (slot 3), or nil if none is needed.
    private func prepareInput(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, isa: InstructionSet) -> UnsafeSendablePointer? {
        let count = ss_nm_input_floats(isa.cValue, inputFeatures, Int32(m), rows)
        guard count > 0, let xt = ss_thread_scratch(3, count) else { return nil }
        ss_nm_prepare_input_isa(isa.cValue, x, inputStride, rows, inputFeatures, Int32(m), xt)
        return UnsafeSendablePointer(xt)
    }

    /// The weight back as a dense row-major matrix (zeros where pruned).
    public func denseWeights() -> [Float] {
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        out.withUnsafeMutableBufferPointer {
            ss_nm_unpack(values.pointer, UnsafeRawPointer(indices.pointer), outputFeatures, inputFeatures, Int32(n), Int32(m),
                         $0.baseAddress, inputFeatures)
        }
        return out
    }
}
