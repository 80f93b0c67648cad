import SparseKernels

/// Builds an `MLPModel` from an mlp folder's manifest and `model.safetensors`: the layer list's
/// linear layers become one chain for the `LinearLayerBuilder` (so ℓ1,∞ compaction can shrink
/// neighbours), activations and softmax become steps between them.
enum MLPLoader {
    static func open(_ source: ModelSource) throws -> (model: MLPModel, layers: LinearLayerBuilder) {
        let builder = try source.linearLayers()
        let model = try build(source.manifest, layers: builder, fail: source.fail)
        try builder.finish()
        return (model, builder)
    }

    /// A linear layer waiting for its chain: its step and summary index, and whether the next
    /// linear layer still reads its output through element-wise steps only.
    private struct PendingLinear {
        var step: Int
        var entry: Int
        var link: LinearLayerBuilder.ChainLink
        var open: Bool
    }

    /// The model whose linear layers come from `builder`; errors name the manifest through `fail`.
    static func build(_ manifest: ModelManifest, layers builder: LinearLayerBuilder,
                      fail: (String) -> ModelLoadError) throws -> MLPModel {
        guard manifest.inputs.count == 1, let input = manifest.inputs.first else {
            throw fail("an mlp model has exactly one input, the manifest declares \(manifest.inputs.count)")
        }
        guard input.datatype == .fp32, input.shape.count == 2, input.shape[0] == -1, input.shape[1] > 0 else {
            throw fail("mlp input '\(input.name)' must be FP32 with shape [-1, features], got \(input.datatype.rawValue) \(input.shape)")
        }
        guard !manifest.layers.isEmpty else { throw fail("an mlp model needs a non-empty 'layers' list") }
        var steps: [MLPModel.Step] = [], summaries: [ModelSummary.Layer] = [], linear: [PendingLinear] = []
        let features = try walk(manifest.layers, features: input.shape[1], builder: builder, fail: fail,
                                steps: &steps, summaries: &summaries, linear: &linear)
        guard !linear.isEmpty else { throw fail("an mlp model needs at least one linear layer") }
        let layers: [BuiltLinearLayer]
        do {
            layers = try builder.chain(linear.map(\.link))
        } catch let error as LayerCompressionError {
            throw fail(error.description)
        }
        for (pending, built) in zip(linear, layers) {
            let op = built.op, link = pending.link
            steps[pending.step] = .linear(op, link.activations[0], .init(name: link.name, weight: link.weight, bias: link.bias,
                                                                       outputs: link.outputs))
            summaries[pending.entry].parameterCount = op.parameterCount
            summaries[pending.entry].byteCount = op.byteCount
            summaries[pending.entry].storage = op.storage
            // Against the layer's own dense size (a compacted operator is narrower than the layer).
            summaries[pending.entry].density = Double(op.parameterCount) / Double(link.outputs * link.inputs + link.outputs)
            summaries[pending.entry].relativeError = built.facts.relativeError
            summaries[pending.entry].compression = built.facts
        }
        try checkOutputs(manifest, features: features, fail: fail)
        var summary = ModelSummary(architecture: "mlp", name: manifest.name, layers: summaries)
        summary.artifact = builder.artifact?.provenance
        return MLPModel(manifest: manifest, inputFeatures: input.shape[1], outputFeatures: features, steps: steps, summary: summary)
    }

    /// Walks the layer list: a placeholder step per linear layer (built later as one chain), the
    /// element-wise steps, and a summary row each. Returns the last layer's feature count.
    private static func walk(_ specs: [LayerSpec], features inputFeatures: Int, builder: LinearLayerBuilder,
                             fail: (String) -> ModelLoadError, steps: inout [MLPModel.Step],
                             summaries: inout [ModelSummary.Layer], linear: inout [PendingLinear]) throws -> Int {
        var features = inputFeatures
        for (i, layer) in specs.enumerated() {
            let layerName = layer.name ?? "layers[\(i)]"
            func row(_ activation: String?) -> ModelSummary.Layer {
                .init(name: layerName, type: layer.type, inputFeatures: features, outputFeatures: features, activation: activation,
                      parameterCount: 0, byteCount: 0)
            }
            switch layer {
            case .linear(let spec):
                let (outFeatures, inFeatures) = try builder.shape(of: layerName, weight: spec.weight)
                guard inFeatures == features else {
                    throw SafeTensorsError(file: builder.weights.source, tensor: spec.weight,
                                           reason: "layer '\(layerName)' weight has shape [\(outFeatures), \(inFeatures)]: \(inFeatures) inputs, but the previous layer produces \(features) features")
                }
                // Built once the whole chain is known (ℓ1,∞ compaction shrinks neighbours).
                if let last = linear.indices.last, linear[last].open { linear[last].link.feedsNext = true }
                let link = LinearLayerBuilder.ChainLink(name: layerName, weight: spec.weight, bias: spec.bias, outputs: outFeatures,
                                                        inputs: inFeatures, activations: [spec.activation], feedsNext: false)
                linear.append(PendingLinear(step: steps.count, entry: summaries.count, link: link, open: true))
                steps.append(.activation(.none))
                var entry = row(spec.activation == .none ? nil : spec.activation.rawValue)
                entry.outputFeatures = outFeatures
                summaries.append(entry)
                features = outFeatures
            case .activation(let spec):
                if let last = linear.indices.last, linear[last].open { linear[last].link.activations.append(spec.activation) }
                steps.append(.activation(spec.activation))
                summaries.append(row(spec.activation.rawValue))
            case .softmax:
                if let last = linear.indices.last { linear[last].open = false }
                steps.append(.softmax)
                summaries.append(row(nil))
            case .conv1d, .recurrence, .pool, .flatten:
                throw fail("layer '\(layerName)' of type '\(layer.type)' needs the 'sequential' architecture (an mlp has linear, activation and softmax layers)")
            }
        }
        return features
    }

    private static func checkOutputs(_ manifest: ModelManifest, features: Int, fail: (String) -> ModelLoadError) throws {
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
    }
}
