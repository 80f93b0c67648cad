import ArgumentParser
import Dispatch
import Foundation
import SparseCompression
import SparseJSON
import SparseModels

/// `compress --recover`: fine-tune the compressed layers against the dense model before the
/// artifact is written (recovery training with the structure fixed).
struct RecoveryArguments: ParsableArguments {
    @Flag(help: "Fine-tune the compressed model against the dense one (distillation, structure fixed) before writing the artifact.")
    var recover = false

    @Option(help: "Recovery: passes over the training samples (default 60 for mlp classifiers, \(RecoveryOptions.sequence.epochs) for sequential ones; for encoders, per layer, default \(RecoveryOptions.encoder.epochs)).")
    var epochs: Int?

    @Option(help: "Recovery: peak AdamW learning rate (default 1e-3 for mlp classifiers, \(RecoveryOptions.sequence.learningRate) for sequential ones, \(RecoveryOptions.encoder.learningRate) for encoders; warm-up, then cosine decay).")
    var lr: Float?

    @Option(help: "Recovery: samples per step (default 64 for mlp classifiers, \(RecoveryOptions.sequence.batchSize) for sequential ones, \(RecoveryOptions.encoder.batchSize) texts for encoders).")
    var batchSize: Int?

    @Option(help: "Recovery: training samples. Classifiers: safetensors with 'inputs' [n, features] ([n, channels, length] for sequential models) and 'labels' [n] (labels optional: the teacher alone then), default calibration.safetensors, else train.safetensors, in the model folder. Text encoders: one text per line, default the --calibration file, else the model folder's recovery.txt, else its calibration.txt.")
    var recoveryData: String?

    @Option(help: "Recovery of text encoders: epochs of end-to-end distillation on the sentence embeddings after the block-wise pass (default \(RecoveryOptions.encoder.endToEndEpochs)).")
    var endToEndEpochs: Int?

    @Option(help: "Recovery of text encoders: at most this many block-wise steps per layer (default: --epochs full epochs); the schedule spans the steps run.")
    var layerSteps: Int?

    @Option(name: .customLong("end-to-end-lr"), help: "Recovery of text encoders: peak learning rate of the end-to-end pass (default \(RecoveryOptions.encoder.endToEndLearningRate)).")
    var endToEndLR: Float?

    @Flag(help: "Recovery of text encoders: train the LayerNorms' gains and biases too (stored in the artifact; default off).")
    var trainNorms = false

    @Option(help: "Recovery of text encoders: weight of the hidden states in the end-to-end loss, added to the sentence embeddings' MSE as this times the mean over layers of each layer's output MSE to the dense model's (default 0: embeddings only).")
    var hiddenStateWeight: Float?

    func validate() throws {
        if !recover && (epochs != nil || lr != nil || batchSize != nil || recoveryData != nil || endToEndEpochs != nil || endToEndLR != nil || trainNorms
            || layerSteps != nil || hiddenStateWeight != nil) {
            throw ValidationError("--epochs, --lr, --batch-size, --recovery-data, --end-to-end-epochs, --end-to-end-lr, --layer-steps, --hidden-state-weight and --train-norms only apply with --recover")
        }
        if let hiddenStateWeight, !(hiddenStateWeight.isFinite && (0...1000).contains(hiddenStateWeight)) {
            throw ValidationError("--hidden-state-weight must be a number in 0...1000")
        }
        if let endToEndEpochs, !(0...10_000).contains(endToEndEpochs) { throw ValidationError("--end-to-end-epochs must be in 0...10000") }
        if let layerSteps, !(1...10_000_000).contains(layerSteps) { throw ValidationError("--layer-steps must be in 1...10000000") }
        if let epochs, !(1...100_000).contains(epochs) { throw ValidationError("--epochs must be in 1...100000") }
        if let lr, !(lr.isFinite && lr > 0) { throw ValidationError("--lr must be a positive number") }
        if let endToEndLR, !(endToEndLR.isFinite && endToEndLR > 0) { throw ValidationError("--end-to-end-lr must be a positive number") }
        if let batchSize, !(1...65_536).contains(batchSize) { throw ValidationError("--batch-size must be in 1...65536") }
    }

    /// The defaults for the model's architecture, with the options given.
    func options(for architecture: ModelArchitecture) -> RecoveryOptions {
        var o = architecture == .bertEncoder ? RecoveryOptions.encoder : architecture == .sequential ? RecoveryOptions.sequence : RecoveryOptions()
        if let epochs { o.epochs = epochs }
        if let lr { o.learningRate = lr }
        if let batchSize { o.batchSize = batchSize }
        if let endToEndEpochs { o.endToEndEpochs = endToEndEpochs }
        if let endToEndLR { o.endToEndLearningRate = endToEndLR }
        if let layerSteps { o.layerSteps = layerSteps }
        o.trainNorms = trainNorms
        if let hiddenStateWeight { o.hiddenStateWeight = hiddenStateWeight }
        return o
    }

    /// The one-shot step's calibration when recovering a text encoder: `RecoveryOptions.encoderCalibrationSamples`
    /// samples unless the compression JSON (`json`) sets `calibration.samples`; classifiers and
    /// plain one-shot runs keep `options` as they are.
    func oneShotCalibration(_ options: CalibrationOptions?, model: String, json: String) throws -> CalibrationOptions? {
        guard recover, var options,
              try ModelManifest.load(path: ModelLoader.path(model, ModelLoader.manifestFileName)).architecture == .bertEncoder,
              (try? JSON.parse(json))?["calibration"]?["samples"] == nil else { return options }
        options.samples = max(options.samples, RecoveryOptions.encoderCalibrationSamples)
        return options
    }

    /// The training and held-out files of a classifier in `model`, or why recovery has no training signal.
    func classifierFiles(model: String, heldOut: String?) throws -> (training: String, heldOut: String?) {
        let fm = FileManager.default
        let defaults = ["calibration.safetensors", "train.safetensors"].map { URL(fileURLWithPath: model).appendingPathComponent($0).path }
        guard let training = recoveryData ?? defaults.first(where: { fm.fileExists(atPath: $0) }) else {
            throw ExitMessage("--recover: '\(model)' has no training samples (no calibration.safetensors or train.safetensors beside it) and no "
                              + "--recovery-data was given; recovery training needs samples of the model's inputs, so it is refused")
        }
        let defaultHeldOut = URL(fileURLWithPath: model).appendingPathComponent("test.safetensors").path
        return (training, heldOut ?? (fm.fileExists(atPath: defaultHeldOut) ? defaultHeldOut : nil))
    }

    /// The training and held-out texts of a text encoder: --recovery-data, else a --calibration
    /// file, else the model folder's recovery.txt, else its calibration.txt; --held-out, else its heldout.txt.
    func encoderFiles(model: String, calibration: String?, heldOut: String?) throws -> (training: String, heldOut: String?) {
        let given = calibration == "default" ? nil : calibration
        let shipped = URL(fileURLWithPath: model).appendingPathComponent("recovery.txt").path
        let recovery = FileManager.default.fileExists(atPath: shipped) ? shipped : nil
        guard let training = recoveryData ?? given ?? recovery ?? CalibrationOptions.defaultFile(inModel: model) else {
            throw ExitMessage("--recover: '\(model)' has no recovery.txt or calibration.txt and neither --recovery-data nor --calibration was given; "
                              + "recovery training of a text encoder needs texts (one per line), so it is refused")
        }
        return (training, heldOut ?? HeldOutQuality.defaultFile(inModel: model))
    }

    /// The rewrite `CompressedArtifact.write` runs on the compressed layers: the recovery run for
    /// the model's kind (mlp classifier or bert-encoder), progress lines on stdout, the first
    /// SIGINT stopping it after the current step (the artifact is then written with the weights so
    /// far; a second SIGINT ends the process).
    func rewrite(model: String, calibration: String?, heldOut: String?) throws -> ArtifactWriter.LayerRewrite {
        let manifest = try ModelManifest.load(path: ModelLoader.path(model, ModelLoader.manifestFileName))
        let encoder = manifest.architecture == .bertEncoder
        let (training, held) = try encoder ? encoderFiles(model: model, calibration: calibration, heldOut: heldOut)
            : classifierFiles(model: model, heldOut: heldOut)
        for path in [training] + (held.map { [$0] } ?? []) where !FileManager.default.fileExists(atPath: path) {
            throw ExitMessage("\(path): file does not exist")
        }
        let options = self.options(for: manifest.architecture)
        return { builder in
            let stop = InterruptFlag()
            defer { stop.uninstall() }
            let result = try encoder
                ? EncoderRecovery.recover(directory: model, builder: builder, training: training, heldOut: held, options: options,
                                              progress: printLine, shouldStop: { stop.isSet })
                : ClassifierRecovery.recover(directory: model, builder: builder, training: training, heldOut: held, options: options,
                                                 progress: printLine, shouldStop: { stop.isSet })
            let r = result.report
            printLine(String(format: "recover: %@ after %d of %d steps (%.1f s)", r.outcome.rawValue, r.steps, r.stepsPlanned, r.seconds)
                  + (r.heldOut.map { String(format: "; held-out %@ on %d samples: dense %.4f, one-shot %.4f, recovered %.4f", $0.metric, $0.samples, $0.dense, $0.oneShot, $0.recovered) }
                      ?? "; no held-out samples, quality not measured"))
            return (result.layers, result.tensors, try RecoveryReport.json(result.report))
        }
    }
}

/// Set by the first SIGINT while installed; the default action is restored after it, so a second
/// SIGINT ends the process.
final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    private let source: DispatchSourceSignal

    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [unowned self] in
            lock.lock()
            set = true
            lock.unlock()
            printLine("recover: interrupted; stopping after this step and writing the artifact with the weights so far (Ctrl-C again to abort)")
            signal(SIGINT, SIG_DFL)
        }
        source.resume()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return set
    }

    func uninstall() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}

/// A line on stdout, unbuffered (progress must show while a run is piped).
func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
