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
        let rewrite = recovery.recover ? try recovery.rewrite(model: model) : nil
        let written: ArtifactWriter.Written
        do {
            written = try ArtifactWriter.write(source: model, plan: config.plan, compressionJSON: normalized,
                                               toolVersion: InferenceService.version, output: out, rewrite: rewrite)
        } catch {
            throw ExitMessage("\(error)")
        }
        print("\(out): compressed artifact of \(model) (\(written.fileBytes) bytes of safetensors, \(String(format: "%.2f", Date().timeIntervalSince(started))) s)")
        printSummary(written.summary, model: written.model)
    }
}
