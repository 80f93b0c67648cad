import ArgumentParser
import Foundation
import SparseCompression
import SparseModels
import SparseServe
import SparseJSON

/// `sparse-serve compress --model DIR --compression JSON --out DIR`: compresses a dense model once
/// and writes a compressed artifact (packed tensors + metadata) that endpoints load directly.
struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a model and write a compressed artifact directory.",
        discussion: """
            The artifact holds every linear layer in the stored form of its method (N:M pack, CSR \
            arrays, BLAST factors, compacted l1inf weights, or the dense weight), the model's other \
            tensors and files unchanged, and in the safetensors metadata the format version, the \
            tool version, the source model, the compression JSON and per-layer facts. An endpoint \
            whose model is the artifact serves it without re-compressing.
            """)

    @Option(help: "Dense model folder (model.json + model.safetensors).")
    var model: String

    @Option(help: #"Compression, as an endpoint's "compression" block: inline JSON or a path to a JSON file."#)
    var compression: String

    @Option(help: "Artifact folder to write (created; replaced only if it holds an earlier artifact or nothing).")
    var out: String

    @Option(help: ArgumentHelp(#"Calibration data for data-aware compression: a text file (one sample per line) for text encoders, a safetensors file ('inputs' [n, ...], optional 'labels') otherwise; "default" for the model folder's calibration.txt / calibration.safetensors. Same as the compression JSON's "calibration"."#))
    var calibration: String?

    @Option(name: [.customLong("held-out"), .customLong("heldout")],
            help: "Held-out data whose quality is measured (one-shot, and before/after recovery) and recorded in the artifact (default: the model folder's heldout.txt or test.safetensors). --heldout is the same option.")
    var heldOut: String?

    @OptionGroup(title: "Recovery training")
    var recovery: RecoveryArguments

    func run() throws {
        let text: String
        if FileManager.default.fileExists(atPath: compression) {
            guard let data = FileManager.default.contents(atPath: compression) else { throw ExitMessage("\(compression): cannot read file") }
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = compression
        }
        let config: CompressionConfig
        let normalized: String
        do {
            config = try CompressionConfig.parse(text)
            normalized = String(decoding: JSONWriter.encode(try JSON.parse(text)), as: UTF8.self)
        } catch {
            throw ExitMessage("\(error)")
        }
        let started = Date()
        let rewrite = recovery.recover ? try recovery.rewrite(model: model, calibration: calibration, heldOut: heldOut) : nil
        let written: ArtifactWriter.Written
        do {
            let (compressor, metadata) = try prepare(config, json: text)
            written = try ArtifactWriter.write(source: model, plan: config.plan, compressionJSON: normalized,
                                               toolVersion: InferenceService.version, output: out, compressor: compressor,
                                               extraMetadata: metadata, rewrite: rewrite)
        } catch {
            throw ExitMessage("\(error)")
        }
        print("\(out): compressed artifact of \(model) (\(written.fileBytes) bytes of safetensors, \(String(format: "%.2f", Date().timeIntervalSince(started))) s)")
        printSummary(written.summary, model: written.model)
    }

    /// The compressor (calibrated when the JSON or --calibration asks for it; more samples when a
    /// text encoder is recovered, see `RecoveryArguments.oneShotCalibration`) and the metadata it
    /// adds: the calibration report and the one-shot quality on held-out data, measured before writing
    /// (recovery, when asked for, records its own figures under `recovery`).
    func prepare(_ config: CompressionConfig, json: String) throws -> (any LayerCompressor, [String: String]) {
        var options = config.calibration
        if let calibration {
            options = options ?? CalibrationOptions()
            options?.path = calibration == "default" ? nil : URL(fileURLWithPath: calibration).standardizedFileURL.path
        }
        options = try recovery.oneShotCalibration(options, model: model, json: json)
        var compressor: any LayerCompressor = WeightCompressor()
        var metadata: [String: String] = [:]
        let encoder = JSONValueEncoder()
        if let options {
            let calibrated = try CalibratedCompressor.run(modelDirectory: model, plan: config.plan, options: options) { print($0) }
            print(String(format: "calibrated on %d samples (%d inputs) of %@ in %.1f s", calibrated.report.samples, calibrated.report.inputs,
                         calibrated.report.source, calibrated.report.seconds))
            compressor = calibrated
            metadata[CompressedArtifact.MetadataKey.calibration] = try encoder.text(calibrated.report)
        }
        if let path = heldOut ?? HeldOutQuality.defaultFile(inModel: model) {
            let (dense, _) = try ModelLoader.open(directory: model, timeLayers: false)
            let (compressed, _) = try ModelLoader.open(directory: model, compression: config.plan, compressor: compressor, timeLayers: false)
            let quality = try HeldOutQuality.measure(compressed: compressed, dense: dense, path: path)
            print(quality.summary)
            metadata[CompressedArtifact.MetadataKey.quality] = try encoder.text(quality)
        }
        return (compressor, metadata)
    }
}
