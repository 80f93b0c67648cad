import SparseKernels

/// A multi-layer perceptron: the manifest's layer list (linear layers with fused activations,
/// stand-alone activations, softmax). Linear layers run on whatever operator their compression
/// gives them (dense, N:M, CSR, BLAST, ℓ1,∞-compacted dense; see SparseCompression's
/// `L1InfCompaction` for how ℓ1,∞ layers shrink their neighbours), compressed at load or read from
/// an artifact by `MLPLoader`.
///
/// It has one FP32 input `[-1, inFeatures]`. Each declared output is either FP32 `[-1, outFeatures]`
/// (the last layer's values) or INT64 `[-1]` (the argmax of each row of those values).
public final class MLPModel: InferenceModel {
    public let architecture = "mlp"
    public let name: String?
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let labels: [String]?
    /// Per-layer sizes, parameter counts and bytes.
    public let summary: ModelSummary
    public let inputFeatures: Int
    public let outputFeatures: Int

    enum Step: Sendable {
        /// The operator, its fused activation, and the layer it runs (name and tensors).
        case linear(any LinearOperator, Activation, CalibrationStage.Layer)
        case activation(Activation)
        case softmax
    }

    let steps: [Step]

    /// Assembles a built model (`MLPLoader` reads the manifest and builds the steps).
    init(manifest: ModelManifest, inputFeatures: Int, outputFeatures: Int, steps: [Step], summary: ModelSummary) {
        name = manifest.name
        inputs = manifest.inputs
        outputs = manifest.outputs
        labels = manifest.labels
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        self.steps = steps
        self.summary = summary
    }

    /// Runs every layer on a batch (`x.columns == inputFeatures`); returns the last layer's values.
    public func forward(_ x: Matrix, isa: InstructionSet = .current) -> Matrix {
        precondition(x.columns == inputFeatures, "MLPModel.forward: \(x.columns) features, expected \(inputFeatures)")
        var current = x
        for step in steps {
            switch step {
            case .linear(let op, let activation, _): current = op.apply(current, activation: activation, isa: isa)
            case .activation(let activation): current.apply(activation, isa: isa)
            case .softmax: current.softmaxRows(isa: isa)
            }
        }
        return current
    }

    public func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let spec = self.inputs[0]
        let (tensor, values) = try Self.fp32Input(inputs, spec)
        guard tensor.shape.count == 2, tensor.shape[1] == inputFeatures else {
            throw InvalidInputError("input '\(spec.name)' must have shape [batch, \(inputFeatures)], got \(tensor.shape)")
        }
        let rows = tensor.shape[0]
        let result = forward(Matrix(rows: rows, columns: inputFeatures, values: values))
        var out: [String: Tensor] = [:]
        for output in outputs {
            if output.datatype == .int64 {
                out[output.name] = Tensor(shape: [rows], storage: .int64(Self.argmaxRows(result)))
            } else {
                out[output.name] = Tensor(shape: [rows, outputFeatures], storage: .fp32(result.values))
            }
        }
        return out
    }

    /// The FP32 input `spec` names, and its values.
    static func fp32Input(_ inputs: [String: Tensor], _ spec: TensorSpec) throws -> (Tensor, [Float]) {
        guard let tensor = inputs[spec.name] else { throw InvalidInputError("missing input '\(spec.name)'") }
        guard case .fp32(let values) = tensor.storage else {
            throw InvalidInputError("input '\(spec.name)' must be FP32, got \(tensor.datatype.rawValue)")
        }
        return (tensor, values)
    }

    /// Index of the largest value of each row (the first one on ties; NaN never wins).
    static func argmaxRows(_ m: Matrix) -> [Int64] {
        (0..<m.rows).map { r in
            var best = 0
            var bestValue = -Float.infinity
            for c in 0..<m.columns {
                let v = m.values[r * m.columns + c]
                if v > bestValue {
                    bestValue = v
                    best = c
                }
            }
            return Int64(best)
        }
    }
}
