import Foundation
import SparseKernels
import SparseModels
import SparseJSON

/// Settings of a recovery run (`sparse-serve compress --recover`).
public struct RecoveryOptions: Sendable, Equatable {
    public var epochs = 60
    public var learningRate: Float = 1e-3
    public var batchSize = 64
    /// Weight of the teacher term: (1 − alpha)·CE(labels) + alpha·T²·KL(teacher_T ‖ student_T).
    public var alpha: Float = 0.5
    public var temperature: Float = 2
    public var weightDecay: Float = 0
    /// Linear warm-up over this fraction of the steps, then cosine decay to zero.
    public var warmupFraction = 0.05
    public var seed: UInt64 = 20_240_601
    /// Encoders: epochs of end-to-end distillation on the sentence embeddings after the
    /// block-wise pass (`epochs` is then per layer), and their peak learning rate.
    public var endToEndEpochs = 0
    public var endToEndLearningRate: Float = 5e-5
    /// Encoders: at most this many block-wise steps per layer (nil: `epochs` full epochs); the
    /// schedule's warm-up and decay span the steps actually run.
    public var layerSteps: Int?
    /// Encoders: train the LayerNorms' gains and biases too (stored in the artifact).
    public var trainNorms = false
    /// Encoders: weight of the hidden-state term of the end-to-end loss, the mean over layers of
    /// each layer's output MSE (per element) to the dense model's (0: sentence embeddings only).
    public var hiddenStateWeight: Float = 0

    public init() {}

    /// The defaults of encoder recovery: one block-wise epoch per layer at peak rate 1e-3, then one
    /// end-to-end epoch at 2e-4, 32 texts per step (measured on MiniLM: README's recovery section).
    public static var encoder: RecoveryOptions {
        var o = RecoveryOptions()
        o.epochs = 1
        o.learningRate = 1e-3
        o.batchSize = 32
        o.endToEndEpochs = 1
        o.endToEndLearningRate = 2e-4
        return o
    }

    /// Encoders: calibration samples of the one-shot step that recovery starts from, unless the
    /// compression's `calibration.samples` says otherwise (more than one-shot compression's default
    /// 512: the one-shot fit generalises better, measured in README's recovery section).
    public static let encoderCalibrationSamples = 4096

    /// The defaults of sequential (1-D CNN) classifier recovery: GunPoint has 50 training series,
    /// so small batches and more epochs (measured: README's recovery section).
    public static var sequence: RecoveryOptions {
        var o = RecoveryOptions()
        o.epochs = 200
        o.batchSize = 10
        o.learningRate = 3e-3
        return o
    }

    /// Learning rate at step `t` (0-based) of `total`.
    func learningRate(step t: Int, of total: Int) -> Float {
        let warmup = max(1, Int(warmupFraction * Double(total)))
        if t < warmup { return learningRate * Float(t + 1) / Float(warmup) }
        let progress = Double(t - warmup) / Double(max(1, total - warmup))
        return learningRate * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}

/// How a recovery run ended and what it measured (recorded in the artifact's metadata).
public struct RecoveryReport: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable { case completed, interrupted, diverged }

    public struct HeldOut: Sendable, Codable, Equatable {
        public var file: String
        public var samples: Int
        public var metric: String
        public var dense: Double
        public var oneShot: Double
        public var recovered: Double
        /// The lowest per-sample value where the metric has one (cosine).
        public var oneShotMinimum: Double?
        public var recoveredMinimum: Double?
    }

    /// One block of a block-wise run (an encoder layer): its steps, the loss of its first step
    /// and the mean loss of its last epoch.
    public struct Block: Sendable, Codable, Equatable {
        public var layer: String
        public var steps: Int
        public var firstLoss: Double?
        public var lastLoss: Double?
    }

    public var method = "distillation"
    public var loss: String
    public var trainingFile: String
    public var trainingFingerprint: String
    public var trainingSamples: Int
    public var usesLabels: Bool
    public var epochs: Int
    /// Encoders: the cap on block-wise steps per layer (`RecoveryOptions.layerSteps`), if set.
    public var layerSteps: Int?
    public var batchSize: Int
    public var learningRate: Double
    public var schedule: String
    public var stepsPlanned: Int
    public var steps: Int
    public var outcome: Outcome
    public var note: String?
    public var firstLoss: Double?
    public var lastLoss: Double?
    public var trainableParameters: Int
    public var seconds: Double
    public var heldOut: HeldOut?
    /// Block-wise runs: each block's losses.
    public var blocks: [Block]?

    /// The report as the artifact metadata's `recovery` value (sorted keys; non-finite numbers as
    /// the strings "inf", "-inf" and "nan").
    public static func json(_ report: RecoveryReport) throws -> String {
        var encoder = JSONValueEncoder()
        encoder.nonFiniteFloats = .strings(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.text(report)
    }
}

/// Recovery training of a compressed classifier (an mlp chain or a sequential conv model) against its dense teacher on labelled
/// samples: AdamW with warm-up and cosine decay over shuffled mini-batches, distillation
/// cross-entropy on the logits. Keeps the parameters of the last step whose loss was finite:
/// a diverging run (non-finite loss or gradient) stops there and says so; an interrupted run
/// (`shouldStop`) stops after the current step.
public final class ClassifierRecovery {
    let student: any TrainableClassifier
    let teacher: any TrainableClassifier
    let data: LabelledSamples
    let options: RecoveryOptions

    init(student: any TrainableClassifier, teacher: any TrainableClassifier, data: LabelledSamples, options: RecoveryOptions) {
        self.student = student
        self.teacher = teacher
        self.data = data
        self.options = options
    }

    /// Fraction of `samples` whose argmax of `chain`'s outputs equals the label.
    static func accuracy(_ chain: any TrainableClassifier, _ samples: LabelledSamples) -> Double {
        guard let labels = samples.labels else { return .nan }
        let out = chain.forward(samples.inputs, rows: samples.count, keep: false), k = chain.outputFeatures
        var right = 0
        for r in 0..<samples.count {
            let row = out[r * k ..< (r + 1) * k]
            if let best = row.indices.max(by: { row[$0] < row[$1] }), best - r * k == Int(labels[r]) { right += 1 }
        }
        return Double(right) / Double(samples.count)
    }

    /// `accuracy` with quantized layers on their served kernels (`TrainableLinear.evaluateAsServed`).
    static func servedAccuracy(_ chain: any TrainableClassifier, _ samples: LabelledSamples) throws -> Double {
        for layer in chain.layers { try layer.evaluateAsServed(true) }
        defer { for layer in chain.layers { try? layer.evaluateAsServed(false) } }
        return accuracy(chain, samples)
    }

    /// Runs the training; `progress` gets a line per epoch (and the outcome).
    func run(heldOut: LabelledSamples?, progress: (String) -> Void, shouldStop: () -> Bool) throws -> RecoveryReport {
        let started = Date()
        let oneShot = try heldOut.map { try Self.servedAccuracy(student, $0) }
        let teacherLogits = teacher.forward(data.inputs, rows: data.count, keep: false)
        let perEpoch = (data.count + options.batchSize - 1) / options.batchSize, total = options.epochs * perEpoch
        let tensors = student.tensors
        var state = LoopState(lastGood: tensors.map(\.values))
        var rng = SplitMix(seed: options.seed)
        var order = Array(0..<data.count)
        epochs: for epoch in 0..<options.epochs {
            order.shuffle(using: &rng)
            var epochLoss = 0.0, batches = 0
            for b in 0..<perEpoch {
                if shouldStop() {
                    state.outcome = .interrupted
                    state.note = "interrupted after \(state.step) of \(total) steps"
                    break epochs
                }
                let indices = order[b * options.batchSize ..< min(data.count, (b + 1) * options.batchSize)]
                guard let loss = trainStep(indices, teacherLogits: teacherLogits, state: &state, total: total, tensors: tensors) else { break epochs }
                epochLoss += loss
                batches += 1
            }
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / Double(state.step) * Double(total - state.step)
            progress(String(format: "recover: epoch %d/%d  step %d/%d  loss %.5f  lr %.2e  %.1f s  ETA %.1f s", epoch + 1, options.epochs,
                            state.step, total, epochLoss / Double(max(1, batches)), Double(options.learningRate(step: max(0, state.step - 1), of: total)),
                            elapsed, eta))
        }
        if state.outcome != .completed { progress("recover: \(state.note ?? state.outcome.rawValue)") }
        if state.outcome == .diverged {
            for (tensor, good) in zip(tensors, state.lastGood) { tensor.values = good }
            state.step = state.goodSteps
        }
        for layer in student.layers { layer.materialize() }
        let held = try heldOut.map { h -> RecoveryReport.HeldOut in
            guard h.labels != nil else { throw SafeTensorsError(file: h.source, tensor: LabelledSamples.labelsTensor, reason: "held-out samples need labels") }
            return .init(file: h.source, samples: h.count, metric: "accuracy", dense: Self.accuracy(teacher, h), oneShot: oneShot ?? .nan,
                         recovered: try Self.servedAccuracy(student, h))
        }
        return report(state: state, total: total, seconds: Date().timeIntervalSince(started), heldOut: held)
    }

    struct LoopState {
        /// The last parameters whose loss was finite, and the updates they had seen.
        var lastGood: [[Float]]
        var goodSteps = 0
        var step = 0
        var outcome = RecoveryReport.Outcome.completed
        var note: String?
        var firstLoss: Double?
        var lastLoss: Double?
    }

    /// One optimiser step on `indices`; nil when the run diverged (the last good parameters are in
    /// `state.lastGood`).
    private func trainStep(_ indices: ArraySlice<Int>, teacherLogits: [Float], state: inout LoopState, total: Int,
                           tensors: [TrainableTensor]) -> Double? {
        let (x, labels) = data.batch(indices)
        let k = student.outputFeatures
        let teacherBatch = indices.flatMap { teacherLogits[$0 * k ..< ($0 + 1) * k] }
        for tensor in tensors { tensor.zeroGradient() }
        let logits = student.forward(x, rows: indices.count, keep: true)
        var gradient = [Float](repeating: 0, count: logits.count)
        let loss = TrainingKernels.distillationLoss(logits: logits, teacher: teacherBatch, labels: labels, rows: indices.count, cols: k,
                                                    alpha: options.alpha, temperature: options.temperature, gradient: &gradient) ?? .nan
        guard loss.isFinite else {
            state.outcome = .diverged
            state.note = "diverged: loss \(loss) at step \(state.step + 1); kept the weights of step \(state.goodSteps), the last with a finite loss"
            return nil
        }
        state.lastGood = tensors.map(\.values)
        state.goodSteps = state.step
        student.backward(gradient)
        let norm = tensors.reduce(0.0) { $0 + TrainingKernels.sumOfSquares($1.gradient, count: $1.gradient.count) }
        guard norm.isFinite else {
            state.outcome = .diverged
            state.note = "diverged: non-finite gradient at step \(state.step + 1); kept the weights of step \(state.goodSteps), the last with a finite loss"
            return nil
        }
        let adam = TrainingKernels.Adam(learningRate: options.learningRate(step: state.step, of: total), weightDecay: options.weightDecay)
        for tensor in tensors { tensor.step(adam, step: state.step + 1) }
        for layer in student.layers { layer.materialize() }
        state.step += 1
        if state.firstLoss == nil { state.firstLoss = loss }
        state.lastLoss = loss
        return loss
    }

    private func report(state: LoopState, total: Int, seconds: Double, heldOut: RecoveryReport.HeldOut?) -> RecoveryReport {
        let labelled = data.labels != nil
        let loss = labelled
            ? String(format: "%.2f·CE(labels) + %.2f·T²·KL(teacher ‖ student) at T = %g", 1 - options.alpha, options.alpha, options.temperature)
            : String(format: "T²·KL(teacher ‖ student) at T = %g", options.temperature)
        return RecoveryReport(loss: loss, trainingFile: data.source,
                              trainingFingerprint: (try? CompressedArtifact.fingerprint(data.source)) ?? "unknown",
                              trainingSamples: data.count, usesLabels: labelled, epochs: options.epochs, batchSize: options.batchSize,
                              learningRate: Double("\(options.learningRate)") ?? Double(options.learningRate),
                              schedule: String(format: "AdamW, linear warm-up over %.0f %% of steps, cosine decay to 0", 100 * options.warmupFraction),
                              stepsPlanned: total, steps: state.step, outcome: state.outcome, note: state.note, firstLoss: state.firstLoss,
                              lastLoss: state.lastLoss, trainableParameters: student.layers.reduce(0) { $0 + $1.trainableCount },
                              seconds: seconds, heldOut: heldOut)
    }
}

/// Deterministic shuffling of the training samples.
extension SplitMix: RandomNumberGenerator {}
