import CSparseKernels

/// An unstructured sparse linear layer in CSR form: output row `i` keeps `values[rowStart[i] ..<
/// rowStart[i+1]]` at input columns `columns[…]` (layout and kernels in `csr.h`).
public final class CSRWeights: LinearOperator, @unchecked Sendable {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let bias: [Float]?
    public let rowStart: [Int32]
    public let columns: [Int32]
    public let values: [Float]

    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Keeps the non-zeros of a row-major `outputFeatures × inputFeatures` weight.
    public convenience init(weights: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) {
        precondition(weights.count == outputFeatures * inputFeatures, "CSRWeights: weight count does not match the shape")
        let csr = Self.arrays(weights, outputFeatures: outputFeatures, inputFeatures: inputFeatures) { weights[$0] != 0 }
        try! self.init(rowStart: csr.rowStart, columns: csr.columns, values: csr.values, outputFeatures: outputFeatures,
                       inputFeatures: inputFeatures, bias: bias)
    }

    /// The CSR arrays of the entries of a row-major `outputFeatures × inputFeatures` weight whose
    /// row-major index `keep` accepts (zeros too, if it accepts them), row by row in column order.
    public static func arrays(_ weights: [Float], outputFeatures: Int, inputFeatures: Int,
                              keep: (Int) -> Bool) -> (rowStart: [Int32], columns: [Int32], values: [Float]) {
        var starts: [Int32] = [0], cols: [Int32] = [], vals: [Float] = []
        for row in 0..<outputFeatures {
            for col in 0..<inputFeatures where keep(row * inputFeatures + col) {
                cols.append(Int32(col))
                vals.append(weights[row * inputFeatures + col])
            }
            starts.append(Int32(vals.count))
        }
        return (starts, cols, vals)
    }

    /// Keeps the weights where `mask` is true (an already chosen sparsity pattern).
    public convenience init(weights: [Float], mask: [Bool], outputFeatures: Int, inputFeatures: Int, bias: [Float]? = nil) {
        precondition(mask.count == weights.count, "CSRWeights: mask and weights differ in size")
        self.init(weights: zip(weights, mask).map { $1 ? $0 : 0 }, outputFeatures: outputFeatures,
                  inputFeatures: inputFeatures, bias: bias)
    }

    /// Takes CSR arrays as they are, after checking them (monotone row starts, columns in range).
    public init(rowStart: [Int32], columns: [Int32], values: [Float], outputFeatures: Int, inputFeatures: Int,
                bias: [Float]? = nil) throws {
        if let problem = Self.formatProblem(rowStart: rowStart, columns: columns, valueCount: values.count,
                                            outputFeatures: outputFeatures, inputFeatures: inputFeatures) {
            throw FormatError(description: "CSRWeights: \(problem)")
        }
        guard bias.map({ $0.count == outputFeatures }) ?? true else {
            throw FormatError(description: "CSRWeights: bias needs \(outputFeatures) values")
        }
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.bias = bias
        self.rowStart = rowStart
        self.columns = columns
        self.values = values
    }

    /// Why CSR arrays do not form an `outputFeatures × inputFeatures` matrix of `valueCount` kept
    /// weights, or nil: row starts from 0, not decreasing, ending at the value count, rows of at
    /// most `maximumRowLength`; every column in range.
    static func formatProblem(rowStart: [Int32], columns: [Int32], valueCount: Int, outputFeatures: Int, inputFeatures: Int,
                              maximumRowLength: Int = .max) -> String? {
        guard outputFeatures > 0, inputFeatures > 0, rowStart.count == outputFeatures + 1, rowStart.first == 0,
              Int(rowStart.last!) == valueCount, columns.count == valueCount else {
            return "\(rowStart.count) row starts, \(columns.count) columns and \(valueCount) values do not form a \(outputFeatures)×\(inputFeatures) matrix"
        }
        if let row = (0..<outputFeatures).first(where: { rowStart[$0] > rowStart[$0 + 1] }) {
            return "row starts must not decrease (row \(row))"
        }
        if let row = (0..<outputFeatures).first(where: { Int(rowStart[$0 + 1]) - Int(rowStart[$0]) > maximumRowLength }) {
            return "row \(row) keeps more than \(maximumRowLength) weights"
        }
        if let bad = columns.firstIndex(where: { $0 < 0 || Int($0) >= inputFeatures }) {
            return "column \(columns[bad]) (entry \(bad)) is outside 0..<\(inputFeatures)"
        }
        return nil
    }

    /// Keeps the `density` fraction of largest-magnitude weights of the whole matrix.
    public convenience init(magnitudePruning weights: [Float], outputFeatures: Int, inputFeatures: Int, density: Double, bias: [Float]? = nil) {
        let keep = max(0, min(weights.count, Int((Double(weights.count) * density).rounded())))
        var pruned = [Float](repeating: 0, count: weights.count)
        if keep > 0 {
            let threshold = weights.map(abs).sorted(by: >)[keep - 1]
            var kept = 0
            for i in weights.indices where abs(weights[i]) >= threshold && kept < keep {
                pruned[i] = weights[i]
                kept += 1
            }
        }
        self.init(weights: pruned, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
    }

    public var storage: String { "csr" }
    public var parameterCount: Int { values.count + (bias?.count ?? 0) }
    public var byteCount: Int { values.count * 8 + rowStart.count * 4 + (bias?.count ?? 0) * 4 }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        checkApply(rows: rows, inputStride: inputStride, outputStride: outputStride)
        guard rows > 0 else { return }
        // Sparse GEMM runs well under dense speed: its work counts double for the split decision.
        let split = splits(rows: rows, pool: pool, costFactor: 2)
        let prepared: UnsafeSendablePointer? = split ? prepareInput(x, rows: rows, inputStride: inputStride, isa: isa) : nil
        let xs = UnsafeSendablePointer(x), ys = UnsafeSendableMutablePointer(y)
        forEachPanelRange(split: split, pool: pool) { [self] range in
            rowStart.withUnsafeBufferPointer { starts in
                columns.withUnsafeBufferPointer { cols in
                    values.withUnsafeBufferPointer { vals in
                        withOptionalPointer(bias) { b in
                            let r0 = range.lowerBound * 16, r1 = range.upperBound * 16
                            let status = if let xt = prepared {
                                ss_csr_gemm_prepared_rows_isa(isa.cValue, starts.baseAddress, cols.baseAddress, vals.baseAddress, b,
                                                              outputFeatures, inputFeatures, xs.pointer, inputStride, xt.pointer,
                                                              ys.pointer, outputStride, rows, activation.cKind, r0, r1)
                            } else {
                                ss_csr_gemm_rows_isa(isa.cValue, starts.baseAddress, cols.baseAddress, vals.baseAddress, b,
                                                     outputFeatures, inputFeatures, xs.pointer, inputStride, ys.pointer, outputStride,
                                                     rows, activation.cKind, r0, r1)
                            }
                            KernelError.require(status, "csr \(inputFeatures)→\(outputFeatures), \(rows) rows")
                        }
                    }
                }
            }
        }
    }

    /// The batched kernel's transposed input in the caller's scratch (slot 3), or nil if none is needed.
    private func prepareInput(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, isa: InstructionSet) -> UnsafeSendablePointer? {
        let count = ss_csr_input_floats(isa.cValue, inputFeatures, rows)
        guard count > 0, let xt = ss_thread_scratch(3, count) else { return nil }
        ss_csr_prepare_input_isa(isa.cValue, x, inputStride, rows, inputFeatures, xt)
        return UnsafeSendablePointer(xt)
    }

    /// The weight as a dense row-major matrix.
    public func denseWeights() -> [Float] {
        var out = [Float](repeating: 0, count: outputFeatures * inputFeatures)
        for row in 0..<outputFeatures {
            for e in Int(rowStart[row])..<Int(rowStart[row + 1]) { out[row * inputFeatures + Int(columns[e])] += values[e] }
        }
        return out
    }
}
