import Foundation

/// Opens model directories: `model.json` (the manifest) plus, for architectures with weights,
/// `model.safetensors`. Errors name the file and the problem.
public enum ModelLoader {
    public static let manifestFileName = "model.json"
    public static let weightsFileName = "model.safetensors"
    /// Architectures `load(directory:)` can build.
    public static let knownArchitectures = ["mlp", "identity", "bert-encoder"]

    /// Loads the model in `directory`, choosing the implementation by the manifest's architecture.
    public static func load(directory: String, compression: CompressionPlan = .dense) throws -> any InferenceModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelLoadError(file: directory, "model directory does not exist")
        }
        let manifestPath = path(directory, manifestFileName)
        // A bert-encoder manifest carries an "encoder" block that ModelManifest does not decode.
        if let (manifest, encoder) = try BertEncoderModel.manifest(at: manifestPath) {
            return try BertEncoderModel(directory: directory, manifest: manifest, encoderBlock: encoder, compression: compression)
        }
        let manifest = try ModelManifest.load(path: manifestPath)
        guard compression.activations == .exact else {
            throw ModelLoadError(file: manifestPath, "piecewise-linear activations (compression.activations) are supported "
                                 + "by bert-encoder models only; this model is '\(manifest.architecture)'")
        }
        switch manifest.architecture {
        case "mlp":
            let weights = try SafeTensors(contentsOf: path(directory, weightsFileName))
            return try MLPModel(manifest: manifest, weights: weights, manifestFile: manifestPath, compression: compression)
        case "identity":
            do {
                return try IdentityModel(inputs: manifest.inputs, outputs: manifest.outputs)
            } catch let error as InvalidInputError {
                throw ModelLoadError(file: manifestPath, error.description)
            }
        default:
            throw ModelLoadError(file: manifestPath,
                                 "unknown architecture '\(manifest.architecture)' (known: \(knownArchitectures.joined(separator: ", ")))")
        }
    }

    /// The per-layer summary of a loaded model, if its type provides one.
    public static func summary(of model: any InferenceModel) -> ModelSummary? {
        (model as? any SummarizedModel)?.summary
    }

    static func path(_ directory: String, _ file: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(file).path
    }
}
