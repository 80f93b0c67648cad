import SparseKernels

/// Builds a `SequentialModel` from a sequential folder's manifest and `model.safetensors`: each
/// layer of the list is lowered, once, to a step on time-major rows (convolutions to banded
/// operators, recurrences to scans or matrices). Weight matrices (conv window weights, linear
/// weights, a recurrence's B) come from the `LinearLayerBuilder`: compressed through the plan by
/// layer name, or read as stored from a compressed artifact.
enum SequentialLoader {
    static func open(_ source: ModelSource) throws -> (model: SequentialModel, layers: LinearLayerBuilder) {
        let builder = try source.linearLayers()
        let model = try build(source, builder: builder)
        try builder.finish()
        return (model, builder)
    }

    /// The shape of the rows between layers: steps × channels.
    private struct Shape {
        var steps: Int
        var channels: Int
        var features: Int { steps * channels }
    }

    static func build(_ source: ModelSource, builder: LinearLayerBuilder) throws -> SequentialModel {
        let manifest = source.manifest, fail = source.fail
        guard manifest.inputs.count == 1, let input = manifest.inputs.first else {
            throw fail("a sequential model has exactly one input, the manifest declares \(manifest.inputs.count)")
        }
        let shape = input.shape
        guard input.datatype == .fp32, (2...3).contains(shape.count), shape[0] == -1, shape.dropFirst().allSatisfy({ $0 > 0 }) else {
            throw fail("sequential input '\(input.name)' must be FP32 with shape [-1, length] or [-1, channels, length], got \(input.datatype.rawValue) \(shape)")
        }
        guard !manifest.layers.isEmpty else { throw fail("a sequential model needs a non-empty 'layers' list") }
        let length = shape.last!, channels = shape.count == 3 ? shape[1] : 1

        var current = Shape(steps: length, channels: channels)
        var steps: [SequentialModel.Step] = [], summaries: [ModelSummary.Layer] = [], calibration: [CalibrationStage.Layer?] = []
        for (i, layer) in manifest.layers.enumerated() {
            let name = layer.name ?? "layers[\(i)]"
            let (step, summary, next) = try lower(layer, name: name, shape: current, builder: builder, source: source)
            steps.append(step)
            summaries.append(summary)
            switch layer {
            case .conv1d(let spec): calibration.append(CalibrationStage.Layer(name: name, weight: spec.weight, bias: spec.bias, outputs: next.channels))
            case .linear(let spec): calibration.append(CalibrationStage.Layer(name: name, weight: spec.weight, bias: spec.bias, outputs: next.channels))
            default: calibration.append(nil)
            }
            current = next
        }
        try checkOutputs(manifest, shape: current, fail: fail)
        var declared = input
        if channels == 1 { declared.alternativeShapes = [shape.count == 2 ? [-1, 1, length] : [-1, length]] }
        var summary = ModelSummary(architecture: "sequential", name: manifest.name, layers: summaries)
        summary.artifact = builder.artifact?.provenance
        return SequentialModel(manifest: manifest, input: declared, inputLength: length, inputChannels: channels,
                               outputLength: current.steps, outputChannels: current.channels, steps: steps, calibrationLayers: calibration, summary: summary,
                               pool: source.pool)
    }

    /// One layer's step and summary row, and the shape it produces.
    private static func lower(_ layer: LayerSpec, name layerName: String, shape: Shape, builder: LinearLayerBuilder,
                              source: ModelSource) throws -> (SequentialModel.Step, ModelSummary.Layer, Shape) {
        let (t, c) = (shape.steps, shape.channels), fail = source.fail
        func entry(_ outFeatures: Int, activation: Activation? = nil, op: (any LinearOperator)? = nil, density: Double? = nil,
                   facts: LayerCompressionFacts? = nil) -> ModelSummary.Layer {
            LayerBuilding.summary(layerName, type: layer.type, inputs: shape.features, outputs: outFeatures, activation: activation,
                                  op: op, density: density, error: facts?.relativeError, facts: facts)
        }
        switch layer {
        case .linear(let spec):
            let (built, out) = try LayerBuilding.linear(spec, layer: layerName, builder: builder, inputs: c, unit: "channels per step", fail: fail)
            return (.op(built.op, spec.activation, steps: t), entry(t * out, activation: spec.activation, op: built.op, facts: built.facts),
                    Shape(steps: t, channels: out))
        case .conv1d(let spec):
            let conv = try Conv1dLayer(spec: spec, layerName: layerName, builder: builder, inputLength: t, inChannels: c, fail: fail)
            return (.op(conv.op, spec.activation, steps: 1),
                    entry(conv.op.outputFeatures, activation: spec.activation, op: conv.op, density: conv.op.inner.density, facts: conv.facts),
                    Shape(steps: conv.outputLength, channels: conv.outChannels))
        case .recurrence(let spec):
            let rec = try RecurrenceLayer(spec: spec, layerName: layerName, builder: builder, steps: t, inChannels: c, fail: fail)
            return (.op(rec.op, spec.activation, steps: 1),
                    entry(rec.op.outputFeatures, activation: spec.activation, op: rec.op, density: rec.input.density, facts: rec.facts),
                    Shape(steps: rec.outputLength, channels: rec.stateSize))
        case .pool(let spec):
            let size = spec.kernelSize ?? t, stride = spec.stride ?? size
            guard size <= t else {
                throw fail("layer '\(layerName)': pooling window of \(size) steps is longer than its input of \(t) steps")
            }
            let pooling = Pooling1d(kind: spec.kind, kernelSize: size, stride: stride, steps: t, channels: c)
            return (.pool(pooling), entry(pooling.outputSteps * c), Shape(steps: pooling.outputSteps, channels: c))
        case .flatten:
            return (.flatten(steps: t, channels: c), entry(shape.features), Shape(steps: 1, channels: t * c))
        case .activation(let spec):
            return (.activation(spec.activation), entry(shape.features, activation: spec.activation), shape)
        case .softmax:
            return (.softmax(channels: c), entry(shape.features), shape)
        }
    }

    private static func checkOutputs(_ manifest: ModelManifest, shape: Shape, fail: (String) -> ModelLoadError) throws {
        let (t, c) = (shape.steps, shape.channels)
        for (i, output) in manifest.outputs.enumerated() {
            let isValues = output.datatype == .fp32 && output.shape == (t == 1 ? [-1, c] : [-1, c, t])
            let isArgmax = t == 1 && output.datatype == .int64 && output.shape == [-1]
            guard isValues || isArgmax else {
                let expected = t == 1 ? "FP32 [-1, \(c)] (the last layer's values) or INT64 [-1] (their argmax)"
                                      : "FP32 [-1, \(c), \(t)] (the last layer's channels × steps; a pool, flatten or 'last' recurrence leaves one step)"
                throw fail("outputs[\(i)] '\(output.name)' must be \(expected), got \(output.datatype.rawValue) \(output.shape)")
            }
        }
        if let labels = manifest.labels, labels.count != c || t != 1 {
            throw fail("'labels' has \(labels.count) names but the last layer produces \(c) channels over \(t) steps (labels need one step)")
        }
    }
}
