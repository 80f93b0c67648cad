import SparseKernels
import SparseModels

/// A feed-forward chain of linear layers, each followed by one activation with a backward kernel
/// (none, ReLU, GELU): an MLP's layers up to its logits. `forward` keeps each stage's input and
/// pre-activation for `backward`, which adds every layer's parameter gradients.
final class TrainableChain {
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
    var tensors: [TrainableTensor] { stages.flatMap(\.layer.tensors) }

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
                layer.weight.withUnsafeBufferPointer { pw in
                    z.withUnsafeMutableBufferPointer { pz in
                        TrainingKernels.gemm(transA: false, transB: true, m: rows, n: layer.outputs, k: layer.inputs, a: px.baseAddress!, lda: layer.inputs,
                                             b: pw.baseAddress!, ldb: layer.inputs, beta: 0, c: pz.baseAddress!, ldc: layer.outputs)
                    }
                }
            }
            if let bias = layer.bias?.values {
                for r in 0..<rows {
                    for j in 0..<layer.outputs { z[r * layer.outputs + j] += bias[j] }
                }
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
            var dw = [Float](repeating: 0, count: layer.outputs * layer.inputs)
            TrainingKernels.gemm(transA: true, transB: false, m: layer.outputs, n: layer.inputs, k: rows, a: dz, lda: layer.outputs,
                                 b: x, ldb: layer.inputs, beta: 0, c: &dw, ldc: layer.inputs)
            var db: [Float]?
            if layer.bias != nil {
                var sums = [Float](repeating: 0, count: layer.outputs)
                TrainingKernels.columnSums(dz, rows: rows, cols: layer.outputs, ld: layer.outputs, into: &sums)
                db = sums
            }
            layer.backward(weightGradient: dw, biasGradient: db)
            guard index > 0 else { break }
            var dx = [Float](repeating: 0, count: rows * layer.inputs)
            TrainingKernels.gemm(transA: false, transB: false, m: rows, n: layer.inputs, k: layer.outputs, a: dz, lda: layer.outputs,
                                 b: layer.weight, ldb: layer.inputs, beta: 0, c: &dx, ldc: layer.inputs)
            g = dx
        }
    }
}
