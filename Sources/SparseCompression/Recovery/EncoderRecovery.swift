import Foundation
import SparseKernels
import SparseModels

/// Recovery training of a compressed BERT encoder (`sparse-serve compress --recover` on a
/// bert-encoder): block-wise distillation against the dense encoder on the training texts
/// (`BlockwiseDistillation`), every linear layer trained with its structure fixed
/// (`TrainableLinear`); embeddings and LayerNorms stay as they are. The held-out quality (mean and
/// minimum cosine of the sentence embeddings to the dense model's) is measured through the real
/// inference path before and after.
public enum EncoderRecovery {
    /// The six linear layers of encoder layer `i`, in `TrainableEncoderLayer.linears` order, and its two LayerNorms.
    static func names(layer i: Int) -> (linears: [String], norms: [String]) {
        let p = "encoder.layer.\(i)."
        let linears = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense",
                       "output.dense"]
        return (linears.map { p + $0 }, [p + "attention.output.LayerNorm", p + "output.LayerNorm"])
    }

    /// The student (the compressed layers `builder` built) and the dense teacher, layer by layer.
    /// Refuses what it cannot train: piecewise-linear activations, layers whose operators do not
    /// run at the layer's full width, and plans that leave every layer dense.
    static func layers(config: BertConfig, builder: LinearLayerBuilder, trainsNorms: Bool = false) throws
        -> (student: [TrainableEncoderLayer], teacher: [TrainableEncoderLayer]) {
        try checkTrainable(builder)
        let built = Dictionary(builder.built.map { ($0.name, $0.layer) }, uniquingKeysWith: { a, _ in a })
        let shape = EncoderShape(hidden: config.hiddenSize, heads: config.heads, intermediate: config.intermediateSize, epsilon: config.layerNormEpsilon)
        let source = builder.weights
        var student: [TrainableEncoderLayer] = [], teacher: [TrainableEncoderLayer] = []
        for i in 0..<config.layers {
            let (linearNames, normNames) = names(layer: i)
            let norms: [TrainableEncoderLayer.Norm] = try normNames.map {
                (gamma: try source.tensor(named: $0 + ".weight", shape: [shape.hidden]), beta: try source.tensor(named: $0 + ".bias", shape: [shape.hidden]))
            }
            var mine: [TrainableLinear] = [], dense: [TrainableLinear] = []
            for name in linearNames {
                guard let layer = built[name] else { throw RecoveryRefusal("layer '\(name)' was not built") }
                let (out, inp) = (layer.packed.outputFeatures, layer.packed.inputFeatures)
                let trainable = try TrainableLinear(layer.packed)
                guard trainable.outputs == out, trainable.inputs == inp else {
                    throw RecoveryRefusal("layer '\(name)' runs \(trainable.inputs) → \(trainable.outputs) features of \(inp) → \(out); compacted encoder layers cannot be trained")
                }
                mine.append(trainable)
                let w = try source.tensor(named: name + ".weight", shape: [out, inp]), b = try source.tensor(named: name + ".bias", shape: [out])
                dense.append(try TrainableLinear(PackedLayer(outputFeatures: out, inputFeatures: inp, form: .dense(weight: w), bias: b)))
            }
            student.append(TrainableEncoderLayer(shape: shape, linears: mine, attentionNorm: norms[0], outputNorm: norms[1], trainsNorms: trainsNorms))
            teacher.append(TrainableEncoderLayer(shape: shape, linears: dense, attentionNorm: norms[0], outputNorm: norms[1]))
        }
        return (student, teacher)
    }

    /// Refuses piecewise-linear activations and plans that leave every layer dense.
    static func checkTrainable(_ builder: LinearLayerBuilder) throws {
        guard builder.activations == .exact else {
            throw RecoveryRefusal("recovery trains with the exact GELU and softmax; compression.activations '\(builder.activations)' is not supported")
        }
        guard builder.built.contains(where: { $0.layer.packed.method != "dense" || $0.layer.packed.layout != .dense }) else {
            throw RecoveryRefusal("nothing to recover: the compression leaves every layer dense")
        }
    }

    /// Fine-tunes the layers `builder` compressed from the dense bert-encoder in `directory` on the
    /// texts in `training` (one per line), measures `heldOut` (texts) before and after, and returns
    /// every linear layer in its stored form with the run's report.
    public static func recover(directory: String, builder: LinearLayerBuilder, training: String, heldOut: String?, options: RecoveryOptions,
                               progress: (String) -> Void, shouldStop: () -> Bool) throws -> RecoveredLayers {
        let started = Date()
        try checkTrainable(builder)
        let (opened, _) = try ModelLoader.open(directory: directory, compression: .dense, timeLayers: false)
        guard let dense = opened as? BertEncoderModel else {
            throw RecoveryRefusal("encoder recovery needs a bert-encoder; this model is '\(opened.architecture)'")
        }
        let (student, teacher) = try layers(config: dense.config, builder: builder, trainsNorms: options.trainNorms)
        guard case .tokens(let sequences) = try CalibrationSet.load(path: training, for: dense).samples else {
            throw RecoveryRefusal("\(training): a bert-encoder trains on text (one sample per line)")
        }
        let oneShot = try heldOut.map { try quality(directory: directory, builder: builder, layers: [:], norms: [:], dense: dense, heldOut: $0) }
        let embedded = PackedStates(spans: PackedStates.spans(lengths: sequences.map(\.count)), width: dense.config.hiddenSize,
                                    values: try dense.embeddingStates(sequences))
        let pooling = SentencePooling(pooling: dense.options.pooling, normalize: dense.options.normalize)
        let (blocks, clock) = withoutActuallyEscaping(progress) { progress in
            withoutActuallyEscaping(shouldStop) { shouldStop in
                train(student: student, teacher: teacher, embedded: embedded,
                      loop: DistillationLoop(options: options, progress: progress, shouldStop: shouldStop), pooling: pooling)
            }
        }
        if clock.outcome != .completed { progress("recover: \(clock.note ?? clock.outcome.rawValue)") }
        var packed: [String: PackedLayer] = [:]
        for (i, layer) in student.enumerated() {
            for (name, linear) in zip(names(layer: i).linears, layer.linears) { packed[name] = try linear.repacked() }
        }
        let norms = options.trainNorms ? trainedNorms(student) : [:]
        let recovered = try heldOut.map { try quality(directory: directory, builder: builder, layers: packed, norms: norms, dense: dense, heldOut: $0) }
        var held: RecoveryReport.HeldOut?
        if let before = oneShot, let after = recovered {
            held = .init(file: after.source, samples: after.samples, metric: "mean cosine to dense", dense: 1, oneShot: before.meanCosine ?? .nan,
                         recovered: after.meanCosine ?? .nan, oneShotMinimum: before.minCosine, recoveredMinimum: after.minCosine)
        }
        let report = self.report(options: options, training: training, samples: sequences.count, blocks: blocks, clock: clock,
                                 trainable: student.reduce(0) { $0 + $1.linears.reduce(0) { $0 + $1.trainableCount } + ($1.trainsNorms ? 4 * $1.shape.hidden : 0) },
                                 seconds: Date().timeIntervalSince(started), heldOut: held)
        return RecoveredLayers(layers: packed, tensors: norms, report: report)
    }

    /// Block-wise distillation layer by layer (inputs: the student's own states; targets: the
    /// dense layer's outputs), then `options.endToEndEpochs` of end-to-end distillation on the
    /// sentence embeddings.
    static func train(student: [TrainableEncoderLayer], teacher: [TrainableEncoderLayer], embedded: PackedStates, loop: DistillationLoop,
                      pooling: SentencePooling) -> ([RecoveryReport.Block], DistillationLoop.Clock) {
        let options = loop.options, samples = embedded.spans.count
        let perLayer = loop.steps(samples: samples, epochs: options.epochs, limit: options.layerSteps)
        var clock = DistillationLoop.Clock(totalSteps: student.count * perLayer + loop.steps(samples: samples, epochs: options.endToEndEpochs))
        var blocks: [RecoveryReport.Block] = []
        var inputs = embedded, denseInputs = embedded, denseStates: [PackedStates] = []
        for (i, (layer, reference)) in zip(student, teacher).enumerated() {
            let targets = reference.forwardAll(denseInputs)
            if options.hiddenStateWeight > 0 && options.endToEndEpochs > 0 { denseStates.append(targets) }
            blocks.append(loop.run("layer \(i + 1)/\(student.count)", samples: samples, epochs: options.epochs, limit: options.layerSteps,
                                   learningRate: options.learningRate,
                                   tensors: layer.tensors, materialize: { layer.linears.forEach { $0.materialize() } }, seed: options.seed &+ UInt64(i),
                                   clock: &clock, objective: EncoderObjectives.layer(layer, inputs: inputs, targets: targets)))
            blocks[i].layer = "encoder.layer.\(i)"
            guard clock.outcome == .completed else { return (blocks, clock) }
            if i + 1 < student.count { inputs = layer.forwardAll(inputs) }
            denseInputs = targets
        }
        guard options.endToEndEpochs > 0 else { return (blocks, clock) }
        let targets = pooling.embed(denseInputs).embeddings
        let linears = student.flatMap(\.linears)
        blocks.append(loop.run("end-to-end", samples: samples, epochs: options.endToEndEpochs, learningRate: options.endToEndLearningRate,
                               tensors: student.flatMap(\.tensors), materialize: { linears.forEach { $0.materialize() } }, seed: options.seed &+ 99,
                               clock: &clock, objective: EncoderObjectives.embeddings(student, inputs: embedded, targets: targets, pooling: pooling,
                                                                      hidden: denseStates.isEmpty ? nil : .init(weight: options.hiddenStateWeight, states: denseStates))))
        return (blocks, clock)
    }

    /// Held-out cosine to the dense model of the encoder with `layers` in place of the ones
    /// `builder` built and the LayerNorm tensors `norms` (by tensor name) in place of the source's.
    static func quality(directory: String, builder: LinearLayerBuilder, layers: [String: PackedLayer], norms: [String: [Float]],
                        dense: BertEncoderModel, heldOut: String) throws -> HeldOutQuality {
        var all = Dictionary(builder.built.map { ($0.name, $0.layer.packed) }, uniquingKeysWith: { a, _ in a })
        all.merge(layers) { _, new in new }
        var (model, _) = try ModelLoader.open(directory: directory, compression: builder.plan, compressor: PackedLayerSet(packed: all), timeLayers: false)
        if !norms.isEmpty, let encoder = model as? BertEncoderModel { model = try encoder.replacingNorms(norms) }
        return try HeldOutQuality.measure(compressed: model, dense: dense, path: heldOut)
    }

    /// The trained LayerNorm gains and biases of every layer, by tensor name (`….LayerNorm.weight` / `.bias`).
    static func trainedNorms(_ student: [TrainableEncoderLayer]) -> [String: [Float]] {
        var tensors: [String: [Float]] = [:]
        for (i, layer) in student.enumerated() {
            for (name, norm) in zip(names(layer: i).norms, layer.norms) {
                tensors[name + ".weight"] = norm.gamma
                tensors[name + ".bias"] = norm.beta
            }
        }
        return tensors
    }

    static func report(options: RecoveryOptions, training: String, samples: Int, blocks: [RecoveryReport.Block], clock: DistillationLoop.Clock,
                       trainable: Int, seconds: Double, heldOut: RecoveryReport.HeldOut?) -> RecoveryReport {
        let layerBlocks = blocks.filter { $0.layer.hasPrefix("encoder.layer.") }
        let first = layerBlocks.compactMap(\.firstLoss), last = layerBlocks.compactMap(\.lastLoss)
        let loss = "block-wise: MSE of each encoder layer's output hidden states to the dense layer's, on the compressed model's own inputs"
            + (options.endToEndEpochs > 0 ? String(format: "; then end to end: mean ‖e − e_dense‖² of the sentence embeddings (%d epochs, peak lr %g)",
                                                   options.endToEndEpochs, options.endToEndLearningRate) : "")
            + (options.endToEndEpochs > 0 && options.hiddenStateWeight > 0
               ? String(format: " plus %g × the mean over layers of each layer's hidden-state MSE to the dense model's", options.hiddenStateWeight) : "")
            + (options.trainNorms ? "; LayerNorm gains and biases train too" : "; LayerNorms frozen")
        var report = RecoveryReport(loss: loss,
                                    trainingFile: training, trainingFingerprint: (try? CompressedArtifact.fingerprint(training)) ?? "unknown",
                                    trainingSamples: samples, usesLabels: false, epochs: options.epochs, batchSize: options.batchSize,
                                    learningRate: Double("\(options.learningRate)") ?? Double(options.learningRate),
                                    schedule: String(format: "per layer: AdamW, linear warm-up over %.0f %% of steps, cosine decay to 0", 100 * options.warmupFraction),
                                    stepsPlanned: clock.totalSteps, steps: clock.steps, outcome: clock.outcome, note: clock.note,
                                    firstLoss: first.isEmpty ? nil : first.reduce(0, +), lastLoss: last.isEmpty ? nil : last.reduce(0, +),
                                    trainableParameters: trainable, seconds: seconds, heldOut: heldOut)
        report.method = "block-wise distillation"
        report.layerSteps = options.layerSteps
        report.blocks = blocks
        return report
    }
}

/// A `LayerCompressor` that hands out layers packed earlier, by name (recovered layers, to
/// measure them through the real model).
struct PackedLayerSet: LayerCompressor {
    let packed: [String: PackedLayer]

    func pack(chain layers: [DenseLinearLayer]) -> [Result<(packed: PackedLayer, relativeError: Double?), any Error>] {
        layers.map { layer in
            guard let mine = packed[layer.name] else { return .failure(RecoveryRefusal("no packed form of layer '\(layer.name)'")) }
            return .success((mine, nil))
        }
    }
}
