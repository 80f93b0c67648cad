import ArgumentParser
import Foundation
import SparseModels
import SparseServe

/// `sparse-serve inspect DIR [--compression JSON]`: loads a model folder (optionally compressed as
/// an endpoint would be) and prints every layer's operator, size, density and relative error.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's layers: shapes, storage, parameters, bytes, density, relative error.")

    @Argument(help: "Model folder (model.json + model.safetensors).")
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
        let model: any InferenceModel
        do {
            model = try ModelLoader.load(directory: path, compression: plan)
        } catch {
            throw ExitMessage("\(error)")
        }
        print("\(path): architecture \(model.architecture)")
        for spec in model.inputs { print("  input  \(spec.name) \(spec.datatype.rawValue) \(spec.shape)") }
        for spec in model.outputs { print("  output \(spec.name) \(spec.datatype.rawValue) \(spec.shape)") }
        guard let summary = ModelLoader.summary(of: model) else { return }
        func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
            let gap = String(repeating: " ", count: max(0, width - text.count))
            return right ? gap + text : text + gap
        }
        print(pad("layer", 14) + pad("type", 9) + pad("shape", 10) + pad("storage", 10)
              + pad("params", 10, right: true) + pad("bytes", 11, right: true) + pad("density", 9, right: true) + pad("rel.err", 9, right: true))
        for l in summary.layers {
            print(pad(l.name, 14) + pad(l.type, 9) + pad("\(l.outputFeatures)x\(l.inputFeatures)", 10) + pad(l.storage ?? "-", 10)
                  + pad("\(l.parameterCount)", 10, right: true) + pad("\(l.byteCount)", 11, right: true)
                  + pad(l.density.map { String(format: "%.3f", $0) } ?? "-", 9, right: true)
                  + pad(l.relativeError.map { String(format: "%.4f", $0) } ?? "-", 9, right: true))
        }
        print(String(format: "total: %d parameters, %d bytes, density %.3f", summary.parameterCount, summary.byteCount, summary.density))
    }
}
