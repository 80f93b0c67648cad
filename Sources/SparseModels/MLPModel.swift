import SparseKernels

/// A multi-layer perceptron: the manifest's layer list (linear layers with fused activations,
/// stand-alone activations, softmax). Linear layers run on whatever operator their compression
/// gives them (dense, N:M, CSR, BLAST, ℓ1,∞-compacted dense; see `L1InfCompaction` for how ℓ1,∞
/// layers shrink their neighbours), compressed at load or read from an artifact.
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
        case linear(any LinearOperator, Activation)
        case activation(Activation)
        case softmax
    }

    private let steps: [Step]

    /// Builds the model from a manifest and its weights. `manifestFile` names the manifest in errors;
    /// weight errors name the safetensors file.
    public convenience init(manifest: ModelManifest, weights: SafeTensors, manifestFile: String = "model.json",
                            compression: CompressionPlan = .dense) throws {
        try self.init(manifest: manifest, layers: LinearLayerBuilder(weights: weights, plan: compression), manifestFile: manifestFile)
    }

    /// Builds the model from a manifest, its linear layers coming from `builder` (compressed at
    /// load, or read from an artifact).
    public init(manifest: ModelManifest, layers builder: LinearLayerBuilder, manifestFile: String = "model.json") throws {
        func fail(_ message: String) -> ModelLoadError { ModelLoadError(file: manifestFile, message) }

        guard manifest.inputs.count == 1, let input = manifest.inputs.first else {
            throw fail("an mlp model has exactly one input, the manifest declares \(manifest.inputs.count)")
        }
        guard input.datatype == .fp32, input.shape.count == 2, input.shape[0] == -1, input.shape[1] > 0 else {
            throw fail("mlp input '\(input.name)' must be FP32 with shape [-1, features], got \(input.datatype.rawValue) \(input.shape)")
        }
        guard !manifest.layers.isEmpty else { throw fail("an mlp model needs a non-empty 'layers' list") }

        var features = input.shape[1]
        var steps: [Step] = []
        var layerSummaries: [ModelSummary.Layer] = []
        // Linear layers: their step and summary index, the layer, and whether the next linear
        // layer still reads this one's output through element-wise steps only.
        var linear: [(step: Int, entry: Int, link: LinearLayerBuilder.ChainLink, open: Bool)] = []
        for (i, layer) in manifest.layers.enumerated() {
            let layerName = layer.name ?? "layers[\(i)]"
            switch layer {
            case .linear(let spec):
                let (outFeatures, inFeatures) = try builder.shape(of: layerName, weight: spec.weight)
                guard inFeatures == features else {
                    throw SafeTensorsError(file: builder.weights.source, tensor: spec.weight,
                                           reason: "layer '\(layerName)' weight has shape [\(outFeatures), \(inFeatures)]: \(inFeatures) inputs, but the previous layer produces \(features) features")
                }
                // Built below, once the whole chain is known (ℓ1,∞ compaction shrinks neighbours).
                if let last = linear.indices.last, linear[last].open { linear[last].link.feedsNext = true }
                linear.append((steps.count, layerSummaries.count,
                               LinearLayerBuilder.ChainLink(name: layerName, weight: spec.weight, bias: spec.bias, outputs: outFeatures,
                                                            inputs: inFeatures, activations: [spec.activation], feedsNext: false), true))
                steps.append(.activation(.none))
                layerSummaries.append(ModelSummary.Layer(name: layerName, type: layer.type, inputFeatures: inFeatures, outputFeatures: outFeatures,
                                                         activation: spec.activation == .none ? nil : spec.activation.rawValue,
                                                         parameterCount: 0, byteCount: 0))
                features = outFeatures
            case .activation(let spec):
                if let last = linear.indices.last, linear[last].open { linear[last].link.activations.append(spec.activation) }
                steps.append(.activation(spec.activation))
                layerSummaries.append(.init(name: layerName, type: layer.type, inputFeatures: features, outputFeatures: features,
                                            activation: spec.activation.rawValue, parameterCount: 0, byteCount: 0))
            case .softmax:
                if let last = linear.indices.last { linear[last].open = false }
                steps.append(.softmax)
                layerSummaries.append(.init(name: layerName, type: layer.type, inputFeatures: features, outputFeatures: features,
                                            activation: nil, parameterCount: 0, byteCount: 0))
            case .conv1d, .recurrence, .pool, .flatten:
                throw fail("layer '\(layerName)' of type '\(layer.type)' needs the 'sequential' architecture (an mlp has linear, activation and softmax layers)")
            }
        }
        guard !linear.isEmpty else { throw fail("an mlp model needs at least one linear layer") }
        let layers: [BuiltLinearLayer]
        do {
            layers = try builder.chain(linear.map(\.link))
        } catch let error as LayerCompressionError {
            throw fail(error.description)
        }
        for ((step, entry, link, _), built) in zip(linear, layers) {
            let op = built.op
            steps[step] = .linear(op, link.activations[0])
            layerSummaries[entry].parameterCount = op.parameterCount
            layerSummaries[entry].byteCount = op.byteCount
            layerSummaries[entry].storage = op.storage
            // Against the layer's own dense size (a compacted operator is narrower than the layer).
            layerSummaries[entry].density = Double(op.parameterCount) / Double(link.outputs * link.inputs + link.outputs)
            layerSummaries[entry].relativeError = built.facts.relativeError
            layerSummaries[entry].compression = built.facts
        }

        for (i, output) in manifest.outputs.enumerated() {
            let isValues = output.datatype == .fp32 && output.shape == [-1, features]
            let isArgmax = output.datatype == .int64 && output.shape == [-1]
            guard isValues || isArgmax else {
                throw fail("outputs[\(i)] '\(output.name)' must be FP32 [-1, \(features)] (the last layer's values) or INT64 [-1] (their argmax), got \(output.datatype.rawValue) \(output.shape)")
            }
        }
        if let labels = manifest.labels, labels.count != features {
            throw fail("'labels' has \(labels.count) names but the last layer produces \(features) features")
        }

        name = manifest.name
        inputs = manifest.inputs
        outputs = manifest.outputs
        labels = manifest.labels
        inputFeatures = input.shape[1]
        outputFeatures = features
        self.steps = steps
        var summary = ModelSummary(architecture: "mlp", name: manifest.name, layers: layerSummaries)
        summary.artifact = builder.artifact?.provenance
        self.summary = summary
    }

    /// Runs every layer on a batch (`x.columns == inputFeatures`); returns the last layer's values.
    public func forward(_ x: Matrix, isa: InstructionSet = .current) -> Matrix {
        precondition(x.columns == inputFeatures, "MLPModel.forward: \(x.columns) features, expected \(inputFeatures)")
        var current = x
        for step in steps {
            switch step {
            case .linear(let op, let activation): current = op.apply(current, activation: activation, isa: isa)
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
