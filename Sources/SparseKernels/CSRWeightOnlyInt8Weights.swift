import CSparseKernels

/// An unstructured sparse linear layer with int8 values (one scale per output row over its kept
/// weights) and fp32 activations (weight-only), in CSR form: the arrays and checks of
/// `CSRInt8Weights`, run by a kernel that widens the values in registers and applies the row
/// scale with the bias (`csr_int8_weights.h`). 5 bytes per kept weight against fp32 CSR's 8.
public final class CSRWeightOnlyInt8Weights: PanelKernelOperator, @unchecked Sendable {
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

    /// The kernel on output panels `panels` (`PanelKernelOperator` gives the `apply` forms).
    public func runKernel(_ call: KernelCall, level: InstructionSet, panels: Range<Int>) -> Int32 {
        let range = outputColumns(ofPanels: panels)
        return stored.withArrays { starts, cols, vals, b in
            ss_csrw8_gemm_rows_isa(level.cValue, starts, cols, vals, stored.scales, b, outputFeatures, inputFeatures, call.x,
                                   call.inputStride, call.y, call.outputStride, call.rows, call.activation.cKind,
                                   range.lowerBound, range.upperBound)
        }
    }
}
