/// A linear layer `y = activation(x · Wᵀ + b)` however its weight is stored (dense, N:M, BLAST,
/// CSR). Implementations are immutable and safe to call from many threads at once.
public protocol LinearOperator: AnyObject, Sendable {
    var inputFeatures: Int { get }
    var outputFeatures: Int { get }
    /// Short description of the storage, e.g. "dense", "nm 2:4", "blast b=4 r=152", "csr".
    var storage: String { get }
    /// Numbers stored (weights, factors, bias), not counting index metadata.
    var parameterCount: Int { get }
    /// Bytes held for the weights, including index metadata and padding.
    var byteCount: Int { get }
    /// `rows` rows of `x` (`inputFeatures` floats each) → `rows` rows of `y` (`outputFeatures`).
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
               activation: Activation, isa: InstructionSet)
}

extension LinearOperator {
    /// Stored parameters over those of the dense `outputFeatures × inputFeatures` weight (+ bias).
    public var density: Double {
        Double(parameterCount) / Double(outputFeatures * inputFeatures + outputFeatures)
    }

    /// `activation(x · Wᵀ + b)` for a whole matrix.
    public func apply(_ x: Matrix, activation: Activation = .none, isa: InstructionSet = .current) -> Matrix {
        precondition(x.columns == inputFeatures, "\(storage): input has \(x.columns) columns, layer expects \(inputFeatures)")
        let rows = x.rows, n = outputFeatures
        let values = [Float](unsafeUninitializedCapacity: rows * n) { buffer, initialized in
            x.values.withUnsafeBufferPointer { input in
                if let src = input.baseAddress, let dst = buffer.baseAddress {
                    apply(src, rows: rows, into: dst, activation: activation, isa: isa)
                }
            }
            initialized = rows * n
        }
        return Matrix(rows: rows, columns: n, values: values)
    }
}

extension DenseWeights: LinearOperator {
    public var storage: String { "dense" }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      activation: Activation, isa: InstructionSet) {
        apply(x, rows: rows, inputStride: inputFeatures, into: y, outputStride: outputFeatures,
              activation: activation, isa: isa)
    }
}
