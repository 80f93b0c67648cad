import SparseKernels
import SparseModels

extension TrainableSequence {
    /// The student (the compressed layers `builder` built from `manifest`) and the dense teacher
    /// (the source's weights) of a sequential classifier, up to the logits. Refuses what it cannot
    /// train: recurrences and flatten (no backward pass yet), activations without a backward
    /// kernel, a softmax before the last layer, an output of more than one step, and plans that
    /// leave every layer dense.
    static func models(manifest: ModelManifest, builder: LinearLayerBuilder, source: SafeTensors) throws
        -> (student: TrainableSequence, teacher: TrainableSequence) {
        guard let input = manifest.inputs.first, (2...3).contains(input.shape.count), let length = input.shape.last else {
            throw RecoveryRefusal("a sequential model with one [-1, length] or [-1, channels, length] input is needed")
        }
        let channels = input.shape.count == 3 ? input.shape[1] : 1
        let built = try ClassifierRecovery.compressedLayers(builder)
        var walk = Walk(steps: length, channels: channels)
        for (i, layer) in manifest.layers.enumerated() {
            let name = layer.name ?? "layers[\(i)]"
            if case .softmax = layer {
                guard i == manifest.layers.count - 1 else { throw RecoveryRefusal("layer '\(name)': a softmax before the last layer cannot be trained") }
                continue
            }
            try walk.add(layer, name: name, built: built, builder: builder, source: source)
        }
        guard walk.steps == 1 else {
            throw RecoveryRefusal("the last layer leaves \(walk.steps) steps; recovery trains classifiers with one output step (e.g. after a global pool)")
        }
        func model(_ stages: [Stage]) -> TrainableSequence {
            TrainableSequence(stages: stages, names: walk.names, inputLength: length, inputChannels: channels, outputFeatures: walk.channels)
        }
        return (model(walk.student), model(walk.teacher))
    }

    /// The layer list walked in order, following the shape (steps × channels).
    private struct Walk {
        var steps: Int
        var channels: Int
        var student: [Stage] = []
        var teacher: [Stage] = []
        var names: [String] = []

        mutating func add(_ layer: LayerSpec, name: String, built: [String: BuiltLinearLayer], builder: LinearLayerBuilder,
                          source: SafeTensors) throws {
            switch layer {
            case .conv1d(let spec):
                let (s, d) = try pair(name, weight: spec.weight, bias: spec.bias, activation: spec.activation, built: built, builder: builder,
                                      source: source)
                let k = s.inputs / channels
                let shape = TrainingKernels.Conv1dShape(length: steps, channels: channels, kernelSize: k, stride: spec.stride, dilation: spec.dilation,
                                                        padding: spec.padding.steps(kernelSize: k, dilation: spec.dilation))
                append(.conv(s, shape, spec.activation), .conv(d, shape, spec.activation), name: name)
                (steps, channels) = (shape.outputLength, s.outputs)
            case .linear(let spec):
                let (s, d) = try pair(name, weight: spec.weight, bias: spec.bias, activation: spec.activation, built: built, builder: builder,
                                      source: source)
                append(.linear(s, steps: steps, spec.activation), .linear(d, steps: steps, spec.activation), name: name)
                channels = s.outputs
            case .pool(let spec):
                let size = spec.kernelSize ?? steps
                let shape = TrainingKernels.PoolShape(length: steps, channels: channels, kernelSize: size, stride: spec.stride ?? size)
                let stage: Stage = spec.kind == .max ? .maxPool(shape) : .averagePool(shape)
                append(stage, stage, name: nil)
                steps = shape.outputLength
            case .activation(let spec):
                try Self.check(spec.activation, name)
                append(.activation(spec.activation), .activation(spec.activation), name: nil)
            case .softmax, .flatten, .recurrence:
                throw RecoveryRefusal("layer '\(name)' of type '\(layer.type)' has no backward pass")
            }
        }

        private mutating func append(_ s: Stage, _ d: Stage, name: String?) {
            student.append(s)
            teacher.append(d)
            if let name { names.append(name) }
        }

        static func check(_ activation: Activation, _ name: String) throws {
            guard TrainingKernels.hasBackward(activation) else {
                throw RecoveryRefusal("layer '\(name)': activation '\(activation.rawValue)' has no backward kernel (none, relu and gelu do)")
            }
        }

        /// The compressed layer `name` as trainable, and its dense source weights as the teacher's layer.
        private func pair(_ name: String, weight: String, bias: String?, activation: Activation, built: [String: BuiltLinearLayer],
                          builder: LinearLayerBuilder, source: SafeTensors) throws -> (TrainableLinear, TrainableLinear) {
            try Self.check(activation, name)
            guard let layer = built[name] else { throw RecoveryRefusal("layer '\(name)' was not built") }
            let (out, inp) = (layer.packed.outputFeatures, layer.packed.inputFeatures)
            guard inp % channels == 0 else { throw RecoveryRefusal("layer '\(name)': \(inp) inputs do not fit \(channels) channels") }
            let dense = PackedLayer(outputFeatures: out, inputFeatures: inp,
                                    form: .dense(weight: try builder.denseWeight(of: name, tensor: weight, outputs: out, inputs: inp, in: source)),
                                    bias: try bias.map { try source.tensor(named: $0, shape: [out]) })
            return (try TrainableLinear(layer.packed), try TrainableLinear(dense))
        }
    }
}
