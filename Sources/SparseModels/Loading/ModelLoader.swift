import Foundation

/// Opens model directories: `model.json` (the manifest) plus, for architectures with weights,
/// `model.safetensors`. Errors name the file and the problem.
public enum ModelLoader {
    public static let manifestFileName = "model.json"
    public static let weightsFileName = "model.safetensors"

    /// Loads the model in `directory` with the loader of the manifest's architecture. A compressed
    /// artifact (manifest marked `"compressed"`) loads its packed layers as stored; `compression`
    /// must then be dense. Layers the plan compresses are packed by `compressor` (SparseCompression's
    /// `WeightCompressor`); without one only dense plans load.
    public static func load(directory: String, compression: CompressionPlan = .dense,
                            compressor: (any LayerCompressor)? = nil) throws -> any InferenceModel {
        try open(directory: directory, compression: compression, compressor: compressor).model
    }

    /// Whether `directory` holds a compressed artifact (its manifest carries the marker).
    public static func isArtifact(directory: String) -> Bool {
        (try? CompressedArtifact.isMarked(path(directory, manifestFileName))) == true
    }

    /// Loads the model and returns the builder of its linear layers too (nil for architectures
    /// without them): what was compressed or read, layer by layer. With `timeLayers` off,
    /// compressed layers are not timed against dense (for `compress` and `inspect`).
    public static func open(directory: String, compression: CompressionPlan = .dense, compressor: (any LayerCompressor)? = nil,
                            timeLayers: Bool = true) throws -> (model: any InferenceModel, layers: LinearLayerBuilder?) {
        let source = try ModelSource(directory: directory, plan: compression, compressor: compressor, timeLayers: timeLayers)
        let opened = try CompressionLimits.withTimeBudget { try openModel(source) }
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

    private static func openModel(_ source: ModelSource) throws -> (model: any InferenceModel, layers: LinearLayerBuilder?) {
        let architecture = source.manifest.architecture
        guard source.plan.activations == .exact || architecture == .bertEncoder else {
            throw source.fail("piecewise-linear activations (compression.activations) are supported "
                              + "by bert-encoder models only; this model is '\(architecture.rawValue)'")
        }
        switch architecture {
        case .bertEncoder:
            let (model, layers) = try BertEncoderLoader.open(source)
            return (model, layers)
        case .mlp:
            let (model, layers) = try MLPLoader.open(source)
            return (model, layers)
        case .sequential:
            let (model, layers) = try SequentialLoader.open(source)
            return (model, layers)
        case .identity:
            return (try IdentityLoader.open(source), nil)
        }
    }

    /// The per-layer summary of a loaded model, if its type provides one.
    public static func summary(of model: any InferenceModel) -> ModelSummary? {
        (model as? any SummarizedModel)?.summary
    }

    package static func path(_ directory: String, _ file: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(file).path
    }
}
