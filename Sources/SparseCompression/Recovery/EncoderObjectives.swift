import SparseKernels

/// The two objectives of encoder recovery, as `DistillationLoop` objectives over a batch of
/// sequence indices (forward pass, loss, and the backward pass when the loss is finite).
enum EncoderObjectives {
    /// Block-wise: the mean squared error of `layer`'s outputs on `inputs` (the compressed model's
    /// own hidden states) to `targets` (the dense layer's outputs on the dense model's states).
    static func layer(_ layer: TrainableEncoderLayer, inputs: PackedStates, targets: PackedStates) -> (ArraySlice<Int>) -> Double {
        { batch in
            let x = inputs.gather(batch), target = targets.gather(batch)
            let (y, cache) = layer.forward(x.values, spans: x.spans, keep: true)
            var gradient = [Float](repeating: 0, count: y.count)
            let loss = TrainingKernels.meanSquaredError(y, target: target.values, rows: x.tokens, cols: x.width, scale: 1 / Float(x.width),
                                                        gradient: &gradient)
            if loss.isFinite, let cache { _ = layer.backward(gradient, cache: cache, inputGradient: false) }
            return loss
        }
    }

    /// The dense model's output states of every encoder layer on the training texts, and the
    /// weight of their term in the end-to-end loss.
    struct HiddenTargets {
        var weight: Float
        var states: [PackedStates]
    }

    /// End to end: every layer from the embedding states `inputs`, loss on the sentence
    /// embeddings against the dense model's (`targets`, one row per sequence), plus, with
    /// `hidden`, its weight times the mean over layers of each layer's output MSE (per element)
    /// to the dense model's states.
    static func embeddings(_ layers: [TrainableEncoderLayer], inputs: PackedStates, targets: [Float], pooling: SentencePooling,
                           hidden: HiddenTargets? = nil) -> (ArraySlice<Int>) -> Double {
        { batch in
            var x = inputs.gather(batch)
            var caches: [TrainableEncoderLayer.Cache] = [], hiddenGradients: [[Float]] = [], hiddenLoss = 0.0
            for (i, layer) in layers.enumerated() {
                let (y, cache) = layer.forward(x.values, spans: x.spans, keep: true)
                caches.append(cache!)
                x.values = y
                if let hidden {
                    var gradient = [Float](repeating: 0, count: y.count)
                    hiddenLoss += TrainingKernels.meanSquaredError(y, target: hidden.states[i].gather(batch).values, rows: x.tokens, cols: x.width,
                                                                   scale: hidden.weight / Float(x.width * layers.count), gradient: &gradient)
                    hiddenGradients.append(gradient)
                }
            }
            let w = x.width
            let (embeddingLoss, gradient) = pooling.loss(x, target: batch.flatMap { targets[$0 * w ..< ($0 + 1) * w] })
            let loss = embeddingLoss + hiddenLoss
            guard loss.isFinite else { return loss }
            var dy = gradient
            for (i, layer) in layers.enumerated().reversed() {
                if i < hiddenGradients.count { add(hiddenGradients[i], to: &dy) }
                dy = layer.backward(dy, cache: caches[i], inputGradient: i > 0)
            }
            return loss
        }
    }

    /// `a += b`, element by element.
    private static func add(_ b: [Float], to a: inout [Float]) {
        for j in a.indices { a[j] += b[j] }
    }
}
