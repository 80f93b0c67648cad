import Foundation

/// Opens model directories: `model.json` (the manifest) plus, for architectures with weights,
/// `model.safetensors`. Errors name the file and the problem.
public enum ModelLoader {
    public static let manifestFileName = "model.json"
    public static let weightsFileName = "model.safetensors"
    /// Architectures `load(directory:)` can build.
    public static let knownArchitectures = ["mlp", "sequential", "identity", "bert-encoder"]

    /// Loads the model in `directory`, choosing the implementation by the manifest's architecture.
    /// A compressed artifact (manifest marked `"compressed"`) loads its packed layers as stored;
    /// `compression` must then be dense.
    public static func load(directory: String, compression: CompressionPlan = .dense) throws -> any InferenceModel {
        try open(directory: directory, compression: compression).model
    }

    /// Whether `directory` holds a compressed artifact (its manifest carries the marker).
    public static func isArtifact(directory: String) -> Bool {
        (try? CompressedArtifact.isMarked(path(directory, manifestFileName))) == true
    }

    /// Loads the model and returns the builder of its linear layers too (nil for architectures
    /// without them): what was compressed or read, layer by layer. With `timeLayers` off,
    /// compressed layers are not timed against dense (for `compress` and `inspect`).
    public static func open(directory: String, compression: CompressionPlan = .dense,
                            timeLayers: Bool = true) throws -> (model: any InferenceModel, layers: LinearLayerBuilder?) {
        let opened = try openModel(directory: directory, compression: compression, timeLayers: timeLayers)
        try checkPatterns(compression, model: opened.model, manifestPath: path(directory, manifestFileName))
        return opened
    }

    /// A `compression.layers` pattern that names no layer with weights is a configuration mistake
    /// (a typo would otherwise leave the intended layers uncompressed without a word).
    static func checkPatterns(_ plan: CompressionPlan, model: any InferenceModel, manifestPath: String) throws {
        guard !plan.overrides.isEmpty else { return }
        let names = summary(of: model)?.layers.filter { $0.storage != nil || $0.parameterCount > 0 }.map(\.name) ?? []
        for (pattern, _) in plan.overrides where !names.contains(where: { CompressionPlan.matches($0, pattern: pattern) }) {
            let known = names.isEmpty ? "the model has no layers with weights"
                : "its layers: " + names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", …" : "")
            throw ModelLoadError(file: manifestPath, "compression.layers.\(pattern): the pattern matches no layer of this model (\(known))")
        }
    }

    private static func openModel(directory: String, compression: CompressionPlan,
                                  timeLayers: Bool) throws -> (model: any InferenceModel, layers: LinearLayerBuilder?) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelLoadError(file: directory, "model directory does not exist")
        }
        let manifestPath = path(directory, manifestFileName)
        // A bert-encoder manifest carries an "encoder" block that ModelManifest does not decode.
        if let (manifest, encoder) = try BertEncoderModel.manifest(at: manifestPath) {
            let layers = try LinearLayerBuilder(directory: directory, manifest: manifest, manifestPath: manifestPath,
                                                plan: compression, timeLayers: timeLayers)
            let model = try BertEncoderModel(directory: directory, manifest: manifest, encoderBlock: encoder, layers: layers)
            try layers.finish()
            return (model, layers)
        }
        let manifest = try ModelManifest.load(path: manifestPath)
        guard compression.activations == .exact else {
            throw ModelLoadError(file: manifestPath, "piecewise-linear activations (compression.activations) are supported "
                                 + "by bert-encoder models only; this model is '\(manifest.architecture)'")
        }
        switch manifest.architecture {
        case "mlp":
            let layers = try LinearLayerBuilder(directory: directory, manifest: manifest, manifestPath: manifestPath,
                                                plan: compression, timeLayers: timeLayers)
            let model = try MLPModel(manifest: manifest, layers: layers, manifestFile: manifestPath)
            try layers.finish()
            return (model, layers)
        case "sequential":
            guard manifest.compressed == nil else {
                throw ModelLoadError(file: manifestPath, "compressed artifacts of sequential models are not supported; compress at load with the endpoint's compression block")
            }
            let weights = try SafeTensors(contentsOf: path(directory, weightsFileName))
            let model = try SequentialModel(manifest: manifest, weights: weights, manifestFile: manifestPath, compression: compression)
            return (model, nil)
        case "identity":
            do {
                return (try IdentityModel(inputs: manifest.inputs, outputs: manifest.outputs), nil)
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
