import ArgumentParser
import Foundation
import SparseCompression
import SparseModels
import SparseServe

/// `sparse-serve inspect PATH [--compression JSON]`: loads a model folder (optionally compressed as
/// an endpoint would be) or a compressed artifact and prints every layer's method, size, density
/// and relative error. For an artifact the facts come from its metadata, are checked against its
/// tensors, and the errors are re-measured against the source model when it is still there.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's or an artifact's layers: shapes, method, parameters, bytes, density, relative error.")

    @Argument(help: "Model folder (model.json + model.safetensors) or compressed artifact folder.")
    var path: String

    @Option(help: #"Compression to apply first, as in an endpoint config, e.g. '{"method": "nm", "n": 2, "m": 4}'."#)
    var compression: String?

    func run() throws {
        let plan: CompressionPlan
        do {
            plan = try compression.map { try CompressionConfig.parse($0).plan } ?? .dense
        } catch {
            throw ExitMessage("\(error)")
        }
        let model: any InferenceModel, layers: LinearLayerBuilder?
        do {
            (model, layers) = try ModelLoader.open(directory: path, compression: plan, compressor: WeightCompressor(), timeLayers: false)
        } catch {
            throw ExitMessage("\(error)")
        }
        print("\(path): architecture \(model.architecture)")
        if let artifact = layers?.artifact {
            let p = artifact.provenance
            print("  compressed artifact, format version \(p.formatVersion), written by sparse-serve \(p.toolVersion)")
            print("  source model \(p.sourceModel) (\(p.sourceFingerprint))")
            print("  compression \(p.compression)")
        }
        for spec in model.inputs { print("  input  \(spec.name) \(spec.datatype.rawValue) \(spec.shape)") }
        for spec in model.outputs { print("  output \(spec.name) \(spec.datatype.rawValue) \(spec.shape)") }
        if let layers, layers.artifact != nil {
            switch CompressedArtifact.verifyErrors(of: layers) {
            case .success(let rows) where rows.isEmpty:
                print("relative errors as recorded (compacted layers are not re-measured)")
            case .success(let rows):
                let bad = rows.filter { abs($0.recorded - $0.measured) > 1e-5 * max(1, $0.measured) }
                print("relative errors re-measured against the source model: \(rows.count - bad.count) of \(rows.count) agree with the metadata"
                      + (rows.count < layers.built.count ? " (compacted layers are not re-measured)" : ""))
                if let first = bad.first {
                    throw ExitMessage("\(path): layer '\(first.layer)': metadata says relative error \(first.recorded), the tensors give \(first.measured) against the source model")
                }
            case .failure(let reason):
                print("relative errors as recorded (not re-measured: \(reason))")
            }
        }
        printSummary(ModelLoader.summary(of: model), model: model)
    }
}

/// Prints the layer table, N:M mask checks, the linear layers' dense vs stored bytes, and a last
/// line `total: N parameters, B bytes, density D`.
func printSummary(_ summary: ModelSummary?, model: any InferenceModel) {
    guard let summary else { return }
    func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let gap = String(repeating: " ", count: max(0, width - text.count))
        return right ? gap + text : text + gap
    }
    // Text columns as wide as their longest entry (sequence layer types like "globalavgpool1d" are long).
    func width(_ minimum: Int, _ texts: [String]) -> Int { max(minimum, (texts.map(\.count).max() ?? 0) + 2) }
    let nameWidth = width(14, summary.layers.map(\.name)), typeWidth = width(11, summary.layers.map(\.type))
    let shapeWidth = width(11, summary.layers.map { "\($0.outputFeatures)x\($0.inputFeatures)" })
    print(pad("layer", nameWidth) + pad("type", typeWidth) + pad("shape", shapeWidth) + pad("method", 7) + pad("stored", 10, right: true)
          + pad("bytes", 11, right: true) + pad("density", 9, right: true) + pad("rel.err", 9, right: true) + "  settings; runs as")
    for l in summary.layers {
        let facts = l.compression
        let settings = facts.map { f in
            (f.parameters.keys.sorted().map { "\($0)=\(f.parameters[$0]!)" } + (f.pinned ? ["pinned"] : [])).joined(separator: " ")
        } ?? ""
        let runs = l.storage.map { settings.isEmpty ? $0 : "\(settings); \($0)" } ?? "-"
        print(pad(l.name, nameWidth) + pad(l.type, typeWidth) + pad("\(l.outputFeatures)x\(l.inputFeatures)", shapeWidth) + pad(facts?.method ?? "-", 7)
              + pad("\(facts?.storedParameters ?? l.parameterCount)", 10, right: true) + pad("\(facts?.storedBytes ?? l.byteCount)", 11, right: true)
              + pad((facts?.density ?? l.density).map { String(format: "%.3f", $0) } ?? "-", 9, right: true)
              + pad(l.relativeError.map { String(format: "%.4f", $0) } ?? "-", 9, right: true) + "  " + runs)
    }
    for l in summary.layers {
        if let check = l.compression?.maskCheck { print("mask check \(l.name): \(check)") }
    }
    if let totals = summary.compressionTotals {
        print("linear layers: \(totals.denseBytes) bytes dense, \(totals.storedBytes) bytes stored, compression ratio \(String(format: "%.2f", totals.ratio))x")
    }
    print(String(format: "total: %d parameters, %d bytes, density %.3f", summary.parameterCount, summary.byteCount, summary.density))
}
