import SparseKernels
import SparseModels

/// A classifier's layers up to its logits, for recovery training: `forward` (keeping what
/// `backward` needs when asked) and `backward`, which adds every trainable layer's parameter
/// gradients. `layers` lists the trainable linear layers in order.
protocol TrainableClassifier: AnyObject {
    var inputFeatures: Int { get }
    var outputFeatures: Int { get }
    var layers: [TrainableLinear] { get }
    func forward(_ x: [Float], rows: Int, keep: Bool) -> [Float]
    func backward(_ outputGradient: [Float])
}

extension TrainableClassifier {
    var tensors: [TrainableTensor] { layers.flatMap(\.tensors) }
}

/// A feed-forward chain of linear layers, each followed by one activation with a backward kernel
/// (none, ReLU, GELU): an MLP's layers up to its logits. `forward` keeps each stage's input and
/// pre-activation for `backward`, which adds every layer's parameter gradients.
final class TrainableChain: TrainableClassifier {
    struct Stage {
        let layer: TrainableLinear
        let activation: Activation
    }

    let stages: [Stage]
    private var inputs: [[Float]] = []
    private var preActivations: [[Float]] = []
    private var rows = 0

    init(_ stages: [Stage]) {
        precondition(stages.allSatisfy { TrainingKernels.hasBackward($0.activation) }, "TrainableChain: activation without a backward kernel")
        self.stages = stages
    }

    var inputFeatures: Int { stages.first?.layer.inputs ?? 0 }
    var outputFeatures: Int { stages.last?.layer.outputs ?? 0 }
    var layers: [TrainableLinear] { stages.map(\.layer) }

    /// The chain's outputs for `rows` rows of `x`; `keep` stores what `backward` needs.
    func forward(_ x: [Float], rows: Int, keep: Bool = true) -> [Float] {
        var current = x
        if keep {
            inputs = []
            preActivations = []
            self.rows = rows
        }
        for stage in stages {
            let layer = stage.layer
            var z = [Float](repeating: 0, count: rows * layer.outputs)
            current.withUnsafeBufferPointer { px in
                z.withUnsafeMutableBufferPointer { layer.forward(px.baseAddress!, ldx: layer.inputs, rows: rows, into: $0.baseAddress!, ldy: layer.outputs) }
            }
            if keep {
                inputs.append(current)
                preActivations.append(z)
            }
            stage.activation.apply(to: &z)
            current = z
        }
        return current
    }

    /// Back-propagates d loss / d outputs through the last `forward(keep: true)`.
    func backward(_ outputGradient: [Float]) {
        var g = outputGradient
        for (index, stage) in stages.enumerated().reversed() {
            let layer = stage.layer, z = preActivations[index], x = inputs[index]
            var dz = [Float](repeating: 0, count: g.count)
            TrainingKernels.activationBackward(stage.activation, x: z, dy: g, dx: &dz, count: g.count)
            var dx = [Float](repeating: 0, count: index > 0 ? rows * layer.inputs : 0)
            dz.withUnsafeBufferPointer { pdz in
                x.withUnsafeBufferPointer { px in
                    dx.withUnsafeMutableBufferPointer { pdx in
                        layer.backward(pdz.baseAddress!, lddy: layer.outputs, x: px.baseAddress!, ldx: layer.inputs, rows: rows,
                                       dx: index > 0 ? pdx.baseAddress : nil, lddx: layer.inputs)
                    }
                }
            }
            guard index > 0 else { break }
            g = dx
        }
    }
}
