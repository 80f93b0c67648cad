import SparseKernels
import SparseModels

/// A sequential classifier (conv1d, max/average pooling, per-step linear layers, activations; a
/// softmax only last) up to its logits, for recovery training, on time-major rows as
/// `SequentialModel` runs them. A convolution is im2col followed by its window weights as a
/// `TrainableLinear` on the training GEMMs (`out × kernelSize·in`, the layout the artifact
/// stores, so N:M masks and BLAST factors of the window weights train with their structure
/// fixed); its backward pass is the layer's gradient GEMMs, then col2im. Max pooling keeps each
/// window's argmax for its backward pass; average pooling (global too) spreads the gradient evenly.
final class TrainableSequence: TrainableClassifier {
    enum Stage {
        case conv(TrainableLinear, TrainingKernels.Conv1dShape, Activation)
        /// A linear layer on the channels of each of `steps` steps.
        case linear(TrainableLinear, steps: Int, Activation)
        case maxPool(TrainingKernels.PoolShape)
        case averagePool(TrainingKernels.PoolShape)
        case activation(Activation)
    }

    let stages: [Stage]
    /// Names of the trainable layers, in the order of `layers`.
    let names: [String]
    let layers: [TrainableLinear]
    let inputFeatures: Int
    let inputChannels: Int
    let outputFeatures: Int

    /// What a stage's forward pass kept for its backward pass.
    private struct Saved {
        var input: [Float] = []
        var preActivation: [Float] = []
        var argmax: [Int32] = []
    }

    private var saved: [Saved] = []
    private var rows = 0

    init(stages: [Stage], names: [String], inputLength: Int, inputChannels: Int, outputFeatures: Int) {
        self.stages = stages
        self.names = names
        layers = stages.compactMap {
            switch $0 {
            case .conv(let layer, _, _), .linear(let layer, _, _): return layer
            default: return nil
            }
        }
        precondition(layers.count == names.count, "TrainableSequence: one name per trainable layer")
        inputFeatures = inputLength * inputChannels
        self.inputChannels = inputChannels
        self.outputFeatures = outputFeatures
    }

    func forward(_ x: [Float], rows: Int, keep: Bool) -> [Float] {
        var current = x
        if keep {
            saved = []
            self.rows = rows
        }
        for stage in stages {
            var kept = Saved()
            switch stage {
            case let .conv(layer, shape, activation):
                let cols = TrainingKernels.im2col(current, rows: rows, shape: shape)
                var z = Self.linearForward(layer, cols, rows: rows * shape.outputLength)
                if keep { (kept.input, kept.preActivation) = (cols, z) }
                activation.apply(to: &z)
                current = z
            case let .linear(layer, steps, activation):
                var z = Self.linearForward(layer, current, rows: rows * steps)
                if keep { (kept.input, kept.preActivation) = (current, z) }
                activation.apply(to: &z)
                current = z
            case .maxPool(let shape):
                let (y, argmax) = TrainingKernels.maxPool(current, rows: rows, shape: shape)
                if keep { kept.argmax = argmax }
                current = y
            case .averagePool(let shape):
                current = TrainingKernels.averagePool(current, rows: rows, shape: shape)
            case .activation(let activation):
                if keep { kept.preActivation = current }
                activation.apply(to: &current)
            }
            if keep { saved.append(kept) }
        }
        return current
    }

    func backward(_ outputGradient: [Float]) {
        var g = outputGradient
        for (index, stage) in stages.enumerated().reversed() {
            let kept = saved[index], needsInput = index > 0
            switch stage {
            case let .conv(layer, shape, activation):
                let dz = Self.activationBackward(activation, kept.preActivation, g)
                let dcols = Self.linearBackward(layer, dz, x: kept.input, rows: rows * shape.outputLength, inputGradient: needsInput)
                if needsInput { g = TrainingKernels.col2im(dcols, rows: rows, shape: shape) }
            case let .linear(layer, steps, activation):
                let dz = Self.activationBackward(activation, kept.preActivation, g)
                g = Self.linearBackward(layer, dz, x: kept.input, rows: rows * steps, inputGradient: needsInput)
            case .maxPool(let shape):
                g = TrainingKernels.maxPoolBackward(g, argmax: kept.argmax, rows: rows, shape: shape)
            case .averagePool(let shape):
                g = TrainingKernels.averagePoolBackward(g, rows: rows, shape: shape)
            case .activation(let activation):
                g = Self.activationBackward(activation, kept.preActivation, g)
            }
        }
    }

    private static func linearForward(_ layer: TrainableLinear, _ x: [Float], rows: Int) -> [Float] {
        var z = [Float](repeating: 0, count: rows * layer.outputs)
        x.withUnsafeBufferPointer { px in
            z.withUnsafeMutableBufferPointer { layer.forward(px.baseAddress!, ldx: layer.inputs, rows: rows, into: $0.baseAddress!, ldy: layer.outputs) }
        }
        return z
    }

    /// Adds the layer's parameter gradients; returns d loss / d x when asked (else empty).
    private static func linearBackward(_ layer: TrainableLinear, _ dz: [Float], x: [Float], rows: Int, inputGradient: Bool) -> [Float] {
        var dx = [Float](repeating: 0, count: inputGradient ? rows * layer.inputs : 0)
        dz.withUnsafeBufferPointer { pdz in
            x.withUnsafeBufferPointer { px in
                dx.withUnsafeMutableBufferPointer { pdx in
                    layer.backward(pdz.baseAddress!, lddy: layer.outputs, x: px.baseAddress!, ldx: layer.inputs, rows: rows,
                                   dx: inputGradient ? pdx.baseAddress : nil, lddx: layer.inputs)
                }
            }
        }
        return dx
    }

    private static func activationBackward(_ activation: Activation, _ z: [Float], _ g: [Float]) -> [Float] {
        guard activation != .none else { return g }
        var dz = [Float](repeating: 0, count: g.count)
        TrainingKernels.activationBackward(activation, x: z, dy: g, dx: &dz, count: g.count)
        return dz
    }
}
