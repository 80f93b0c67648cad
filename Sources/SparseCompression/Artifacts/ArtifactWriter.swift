import Foundation
import SparseModels
import SparseJSON

/// Writes compressed artifacts (`sparse-serve compress`): the end of the compression path. The
/// format is `CompressedArtifact`'s, which SparseModels reads.
public enum ArtifactWriter {
    /// What `write` produced: the artifact's layers as loaded back from it.
    public struct Written {
        public var model: any InferenceModel
        public var summary: ModelSummary
        public var fileBytes: Int
    }

    /// Compresses the dense model in `source` with `plan` and writes the artifact to `output`
    /// (created, or replaced when it holds an earlier artifact or nothing). `compressionJSON` is
    /// the compression block as the user gave it (recorded; its `method` labels the artifact).
    /// The written artifact is loaded back and checked before it replaces `output`. `rewrite`
    /// (recovery training) may replace compressed layers by name, and other F32 tensors of the
    /// source (trained LayerNorms) by name with the same shape, before they are written; its JSON is
    /// recorded under the metadata's `recovery` key. `extraMetadata` adds entries (the
    /// calibration report and held-out quality) beside the format's own.
    public static func write(source: String, plan: CompressionPlan, compressionJSON: String, toolVersion: String,
                             output: String, compressor: any LayerCompressor = WeightCompressor(),
                             extraMetadata: [String: String] = [:], rewrite: LayerRewrite? = nil) throws -> Written {
        let sourceURL = URL(fileURLWithPath: source).standardizedFileURL, outputURL = URL(fileURLWithPath: output).standardizedFileURL
        try checkOutput(outputURL, source: sourceURL, given: output)
        let manifestPath = ModelLoader.path(sourceURL.path, ModelLoader.manifestFileName)
        guard !(try CompressedArtifact.isMarked(manifestPath)) else {
            throw ModelLoadError(file: manifestPath, "the source is already a compressed artifact; compress its dense source model instead")
        }
        let (model, builder) = try ModelLoader.open(directory: sourceURL.path, compression: plan, compressor: compressor, timeLayers: false)
        guard let builder, !builder.built.isEmpty else {
            throw ModelLoadError(file: manifestPath, "a '\(model.architecture)' model has no layers an artifact stores (artifacts hold mlp, bert-encoder and sequential models)")
        }
        var built = builder.built, recovery: String?, trained: [String: [Float]] = [:]
        if let rewrite {
            let (layers, tensors, json) = try rewrite(builder)
            built = try replacing(built, with: layers, builder: builder)
            (trained, recovery) = (tensors, json)
        }
        var writer = try tensors(of: builder, built, trained: trained)
        writer.metadata = try metadata(of: builder, built, source: sourceURL, compressionJSON: compressionJSON, toolVersion: toolVersion)
            .merging(extraMetadata) { own, _ in own }
        if let recovery { writer.metadata[CompressedArtifact.MetadataKey.recovery] = recovery }
        return try stage(writer, source: sourceURL, manifestPath: manifestPath, output: outputURL)
    }

    /// Replaces the compressed layers of a model being written, by layer name, and other tensors
    /// of the source (F32, same shape) by tensor name, and returns the JSON to record under the
    /// metadata's `recovery` key.
    public typealias LayerRewrite = (LinearLayerBuilder) throws -> (layers: [String: PackedLayer], tensors: [String: [Float]], metadata: String)
    typealias BuiltLayers = [(name: String, weight: String, bias: String?, layer: BuiltLinearLayer)]

    /// `built` with the layers named in `layers` replaced (same method parameters; the relative
    /// error re-measured against the source weight, or kept for compacted layers, which have none).
    static func replacing(_ built: BuiltLayers, with layers: [String: PackedLayer], builder: LinearLayerBuilder) throws -> BuiltLayers {
        try built.map { entry in
            guard let packed = layers[entry.name] else { return entry }
            let old = entry.layer
            let isCompacted: Bool
            if case .compacted = packed.form { isCompacted = true } else { isCompacted = false }
            let reference = isCompacted ? nil : try builder.denseWeight(of: entry.name, tensor: entry.weight, outputs: packed.outputFeatures,
                                                                         inputs: packed.inputFeatures)
            let layer = try BuiltLinearLayer(packed: packed, parameters: old.facts.parameters, pinned: old.facts.pinned, reference: reference,
                                             relativeError: isCompacted ? old.facts.relativeError : nil, time: false)
            return (entry.name, entry.weight, entry.bias, layer)
        }
    }

    /// The output must differ from the source and hold nothing but an earlier artifact.
    private static func checkOutput(_ outputURL: URL, source sourceURL: URL, given output: String) throws {
        let fm = FileManager.default
        guard sourceURL.resolvingSymlinksInPath().path != outputURL.resolvingSymlinksInPath().path else {
            throw ModelLoadError(file: output, "the output directory must differ from the source model")
        }
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: outputURL.path, isDirectory: &isDirectory) else { return }
        let manifest = ModelLoader.path(outputURL.path, ModelLoader.manifestFileName)
        let entries = (try? fm.contentsOfDirectory(atPath: outputURL.path)) ?? []
        let isArtifact = fm.fileExists(atPath: manifest) && (try? CompressedArtifact.isMarked(manifest)) == true
        guard isDirectory.boolValue, entries.isEmpty || isArtifact else {
            throw ModelLoadError(file: output, "exists and is neither empty nor a compressed artifact; refusing to overwrite it")
        }
    }

    /// The source's own tensors (those in `trained` with their new values), minus the dense
    /// weights and biases the layers replace, then the packed layers.
    private static func tensors(of builder: LinearLayerBuilder, _ built: BuiltLayers, trained: [String: [Float]] = [:]) throws -> SafeTensorsWriter {
        let replaced = Set(built.flatMap { [$0.weight] + ($0.bias.map { [$0] } ?? []) })
        var writer = SafeTensorsWriter()
        for name in trained.keys where replaced.contains(name) || !builder.weights.contains(name) {
            throw ModelLoadError(file: builder.weights.source, "trained tensor '\(name)' is not a stored tensor of the source")
        }
        for info in builder.weights.tensors where !replaced.contains(info.name) {
            if let values = trained[info.name] {
                guard info.dtype == .f32, info.shape.reduce(1, *) == values.count else {
                    throw ModelLoadError(file: builder.weights.source, "trained tensor '\(info.name)': \(values.count) F32 values for \(info.dtype) \(info.shape)")
                }
                try writer.add(info.name, floats: values, shape: info.shape)
                continue
            }
            try writer.add(info.name, dtype: info.dtype, shape: info.shape, bytes: try builder.weights.rawBytes(named: info.name))
        }
        for entry in built {
            for part in entry.layer.packed.parts() {
                let name = "\(entry.name).\(entry.layer.facts.method).\(part.name)"
                guard !builder.weights.contains(name) || replaced.contains(name) else {
                    throw ModelLoadError(file: builder.weights.source, "tensor '\(name)' of the source clashes with a packed tensor of layer '\(entry.name)'")
                }
                try writer.add(name, dtype: part.dtype, shape: part.shape, bytes: part.data)
            }
        }
        return writer
    }

    /// The `__metadata__` map: format, provenance, compression, activations, per-layer records and totals.
    private static func metadata(of builder: LinearLayerBuilder, _ built: BuiltLayers, source sourceURL: URL, compressionJSON: String,
                                 toolVersion: String) throws -> [String: String] {
        typealias Key = CompressedArtifact.MetadataKey
        let records = built.map { CompressedArtifact.LayerRecord(name: $0.name, weight: $0.weight, bias: $0.bias, layer: $0.layer) }
        let dense = records.reduce(0) { $0 + $1.denseBytes }, stored = records.reduce(0) { $0 + $1.bytes }
        let totals = CompressedArtifact.Totals(denseBytes: dense, storedBytes: stored,
                                               compressionRatio: stored > 0 ? Double(dense) / Double(stored) : 1)
        let encoder = JSONValueEncoder()
        return [
            Key.format: CompressedArtifact.format,
            Key.formatVersion: String(CompressedArtifact.formatVersion),
            Key.toolVersion: toolVersion,
            Key.sourceModel: sourceURL.path,
            Key.sourceFingerprint: try CompressedArtifact.fingerprint(ModelLoader.path(sourceURL.path, ModelLoader.weightsFileName)),
            Key.compression: compressionJSON,
            Key.activations: CompressedArtifact.Metadata.text(builder.activations),
            Key.layers: try encoder.text(records),
            Key.totals: try encoder.text(totals),
        ]
    }

    /// Writes beside the output, loads it back, then moves it in place (no partial artifact is left).
    private static func stage(_ writer: SafeTensorsWriter, source sourceURL: URL, manifestPath: String, output outputURL: URL) throws -> Written {
        let fm = FileManager.default
        let staging = outputURL.deletingLastPathComponent().appendingPathComponent(".\(outputURL.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: staging)
        do {
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            for entry in try fm.contentsOfDirectory(atPath: sourceURL.path)
            where entry != ModelLoader.manifestFileName && entry != ModelLoader.weightsFileName {
                try fm.copyItem(at: sourceURL.appendingPathComponent(entry), to: staging.appendingPathComponent(entry))
            }
            try CompressedArtifact.markedManifest(manifestPath).write(to: staging.appendingPathComponent(ModelLoader.manifestFileName))
            let weightsPath = ModelLoader.path(staging.path, ModelLoader.weightsFileName)
            try writer.write(to: weightsPath)
            let (model, _) = try ModelLoader.open(directory: staging.path, compression: .dense, timeLayers: false)
            guard let summary = ModelLoader.summary(of: model) else { throw ModelLoadError(file: staging.path, "the written artifact has no layer summary") }
            let size = (try fm.attributesOfItem(atPath: weightsPath)[.size] as? NSNumber)?.intValue ?? 0
            if fm.fileExists(atPath: outputURL.path) { try fm.removeItem(at: outputURL) }
            try fm.moveItem(at: staging, to: outputURL)
            return Written(model: model, summary: summary, fileBytes: size)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }
}
