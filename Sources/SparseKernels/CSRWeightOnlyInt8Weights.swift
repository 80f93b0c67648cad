import CSparseKernels

/// An unstructured sparse linear layer with int8 values (one scale per output row over its kept
/// weights) and fp32 activations (weight-only), in CSR form: the arrays and checks of
/// `CSRInt8Weights`, run by a kernel that widens the values in registers and applies the row
/// scale with the bias (`csr_int8_weights.h`). 5 bytes per kept weight against fp32 CSR's 8.
public final class CSRWeightOnlyInt8Weights: LinearOperator, @unchecked Sendable {
    /// The stored arrays (row starts, columns, int8 values, row scales, bias), checked.
    public let stored: CSRInt8Weights

    /// Quantizes a CSR layer's kept weights per output row (absmax / 127, nearest even); same pattern.
    public convenience init(_ source: CSRWeights) throws {
        self.init(checked: try CSRInt8Weights(source))
    }

    /// Takes stored CSR int8 arrays after the checks of `CSRInt8Weights`.
    public convenience init(rowStart: [Int32], columns: [Int32], values: [Int8], scales: [Float], outputFeatures: Int, inputFeatures: Int,
                            bias: [Float]? = nil) throws {
        self.init(checked: try CSRInt8Weights(rowStart: rowStart, columns: columns, values: values, scales: scales,
                                              outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias))
    }

    private init(checked: CSRInt8Weights) { stored = checked }

    public var inputFeatures: Int { stored.inputFeatures }
    public var outputFeatures: Int { stored.outputFeatures }
    public var bias: [Float]? { stored.bias }
    public var storage: String { "csr int8 channel" }
    public var parameterCount: Int { stored.parameterCount }
    public var byteCount: Int { stored.byteCount }
    public var flopsPerRow: Int { stored.flopsPerRow }

    /// The dequantised weight (values × row scale; zeros where not kept), row-major.
    public func denseWeights() -> [Float] { stored.denseWeights() }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y), s = stored
        applyByColumns(rows: rows, inputStride: inputStride, outputStride: outputStride, pool: pool) { begin, end in
            s.rowStart.withUnsafeBufferPointer { starts in
                s.columns.withUnsafeBufferPointer { cols in
                    s.values.withUnsafeBufferPointer { vals in
                        withOptionalPointer(s.bias) { b in
                            ss_csrw8_gemm_rows_isa(isa.cValue, starts.baseAddress, cols.baseAddress, vals.baseAddress, s.scales, b,
                                                   s.outputFeatures, s.inputFeatures, xs.pointer, inputStride, ys.pointer, outputStride,
                                                   rows, activation.cKind, begin, end)
                        }
                    }
                }
            }
        }
    }
}
