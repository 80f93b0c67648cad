import CSparseKernels

/// A dense linear layer `y = activation(x · Wᵀ + b)` with `W` of shape `[outputFeatures, inputFeatures]`
/// (PyTorch's layout). The weights are packed once, at init, into 64-byte aligned 16-row panels for
/// the C GEMM kernels; instances are immutable and safe to share between threads.
/// Conforms to `LinearOperator`; `apply(…outputColumns:…)` computes a panel-aligned column range.
public final class DenseWeights: @unchecked Sendable {
    /// Output features per packed panel; column ranges for `apply(…outputColumns:)` align to it.
    public static let panelWidth = Int(SS_DENSE_PANEL)

    public let inputFeatures: Int
    public let outputFeatures: Int
    /// The bias, `outputFeatures` values, if the layer has one.
    public let bias: [Float]?
    private let packed: UnsafeMutablePointer<Float>
    private let packedCount: Int

    /// Packs a row-major `outputFeatures × inputFeatures` weight and an optional bias.
    public init(weights: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) {
        precondition(outputFeatures > 0 && inputFeatures > 0, "DenseWeights needs positive dimensions")
        precondition(weights.count == outputFeatures * inputFeatures,
                     "DenseWeights: \(weights.count) weights for a \(outputFeatures)×\(inputFeatures) matrix")
        precondition(bias.map { $0.count == outputFeatures } ?? true, "DenseWeights: bias needs \(outputFeatures) values")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        packedCount = ss_dense_packed_floats(outputFeatures, inputFeatures)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: packedCount * MemoryLayout<Float>.stride, alignment: 64)
        packed = raw.bindMemory(to: Float.self, capacity: packedCount)
        weights.withUnsafeBufferPointer { ss_dense_pack($0.baseAddress, outputFeatures, inputFeatures, inputFeatures, packed) }
    }

    /// Packs `weights` (`outputFeatures` rows × `inputFeatures` columns).
    public convenience init(weights: Matrix, bias: [Float]? = nil) {
        self.init(weights: weights.values, outputFeatures: weights.rows, inputFeatures: weights.columns, bias: bias)
    }

    deinit { packed.deallocate() }

    /// Weights plus bias values.
    public var parameterCount: Int { outputFeatures * inputFeatures + (bias?.count ?? 0) }

    /// Bytes held: the packed (zero-padded) panels plus the bias.
    public var byteCount: Int { (packedCount + (bias?.count ?? 0)) * MemoryLayout<Float>.stride }

    /// The weight back in row-major `[outputFeatures, inputFeatures]` layout.
    public func unpackedWeights() -> [Float] {
        let n = outputFeatures, k = inputFeatures, panel = Self.panelWidth
        var result = [Float](repeating: 0, count: n * k)
        for row in 0..<n {
            let base = (row / panel) * k * panel + row % panel
            for col in 0..<k { result[row * k + col] = packed[base + col * panel] }
        }
        return result
    }

    /// The general form: row strides for `x` (rows may overlap) and `y`, and optionally only the output columns in
    /// `outputColumns` (its bounds multiples of `panelWidth`, or the upper one `outputFeatures`), so
    /// several workers can split one call by output panels. Runs on `isa` (lowered to what the
    /// hardware supports).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int, activation: Activation,
                      outputColumns: Range<Int>? = nil, isa: InstructionSet = .current) {
        precondition(rows >= 0 && inputStride >= 0 && outputStride >= outputFeatures, "DenseWeights.apply: bad strides")
        let columns = outputColumns ?? 0..<outputFeatures
        withOptionalPointer(bias) { b in
            let status = ss_dense_gemm_cols_isa(isa.cValue, packed, b, outputFeatures, inputFeatures, x, inputStride,
                                                y, outputStride, rows, activation.cKind, columns.lowerBound, columns.upperBound)
            precondition(status == 0, "DenseWeights.apply: output columns \(columns) are not panel-aligned within 0..<\(outputFeatures)")
        }
    }

    public var storage: String { "dense" }
    public var flopsPerRow: Int { 2 * inputFeatures * outputFeatures }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        let panels = (outputFeatures + Self.panelWidth - 1) / Self.panelWidth
        let split = pool?.shouldSplit(flops: Double(rows * flopsPerRow), rows: rows) ?? false
        guard let pool, split, panels > 1 else {
            return apply(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride,
                         activation: activation, outputColumns: nil, isa: isa)
        }
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        pool.forEachRange(units: panels, split: true) { [self] range in
            let columns = (range.lowerBound * Self.panelWidth)..<min(outputFeatures, range.upperBound * Self.panelWidth)
            apply(xs.pointer, rows: rows, inputStride: inputStride, into: ys.pointer, outputStride: outputStride,
                  activation: activation, outputColumns: columns, isa: isa)
        }
    }
}

extension DenseWeights: LinearOperator {}
