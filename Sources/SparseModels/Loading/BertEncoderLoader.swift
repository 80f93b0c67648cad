import Foundation
import SparseKernels

/// Builds a `BertEncoderModel` from a bert-encoder folder: `model.json` (with its optional
/// `"encoder"` block), `config.json`, `vocab.txt`, the sentence-transformers files
/// (`BertEncoderFiles`) and `model.safetensors` with BERT's tensor names (no `bert.` prefix).
/// Linear layers come from a `LinearLayerBuilder` (compressed at load, or read from an
/// artifact); when query, key and value are all dense (or all N:M alike) they are fused into one
/// [3H × H] operator.
public enum BertEncoderLoader {
    /// Loads the bert-encoder in `directory` on `pool` (benchmarks choose the pool; servers go
    /// through `ModelLoader`).
    public static func load(directory: String, compression: CompressionPlan = .dense, compressor: (any LayerCompressor)? = nil,
                            pool: KernelPool = .shared) throws -> BertEncoderModel {
        let source = try ModelSource(directory: directory, plan: compression, compressor: compressor, timeLayers: true, pool: pool)
        guard source.manifest.architecture == .bertEncoder else { throw source.fail("not a bert-encoder manifest") }
        return try open(source).model
    }

    static func open(_ source: ModelSource) throws -> (model: BertEncoderModel, layers: LinearLayerBuilder) {
        let builder = try source.linearLayers()
        let model = try build(source, layers: builder)
        try builder.finish()
        return (model, builder)
    }

    /// The encoder whose linear layers come from `builder` and everything else from `builder.weights`.
    static func build(_ source: ModelSource, layers builder: LinearLayerBuilder) throws -> BertEncoderModel {
        let manifest = source.manifest, directory = source.directory
        let config = try BertEncoderFiles.config(at: ModelLoader.path(directory, "config.json"))
        let options = BertEncoderFiles.options(manifest.encoder, directory: directory, maxPositions: config.maxPositions)
        try check(manifest, config: config, options: options, fail: source.fail)
        let tokenizer = try WordPieceTokenizer(vocabularyFile: ModelLoader.path(directory, "vocab.txt"), lowercase: options.lowercase)
        guard tokenizer.vocabularySize == config.vocabularySize else {
            throw source.fail("vocab.txt has \(tokenizer.vocabularySize) tokens, config.json says \(config.vocabularySize)")
        }
        let reader = BertWeightReader(builder: builder, config: config, fail: source.fail)
        let embeddings = try reader.embeddings()
        let layers = try (0..<config.layers).map { try reader.layer($0) }
        var summary = ModelSummary(architecture: "bert-encoder", name: manifest.name, layers: reader.summaries)
        summary.artifact = builder.artifact?.provenance
        return BertEncoderModel(config: config, options: options, tokenizer: tokenizer, embeddings: embeddings, layers: layers,
                                tables: reader.tables, inputs: manifest.inputs, outputs: manifest.outputs, summary: summary,
                                pool: source.pool)
    }

    /// Query, key and value as one operator when all three run the same sparse kernel: N:M layers
    /// of one n:m stacked into one pack, or layers whose dense form timed faster (`ChosenDense`)
    /// stacked into one dense GEMM. Each row computes what it computed alone; nil otherwise.
    static func stackedProjection(_ ops: [any LinearOperator]) -> (any LinearOperator)? {
        let nm = ops.compactMap { $0 as? NMWeights }
        if nm.count == ops.count { return NMWeights.stacking(nm) }
        let dense = ops.compactMap { ($0 as? ChosenDense)?.dense }
        guard dense.count == ops.count, let first = dense.first, dense.allSatisfy({ $0.inputFeatures == first.inputFeatures }) else {
            return nil
        }
        let bias = dense.contains { $0.bias != nil } ? dense.flatMap { $0.bias ?? [Float](repeating: 0, count: $0.outputFeatures) } : nil
        return DenseWeights(weights: dense.flatMap { $0.unpackedWeights() }, outputFeatures: dense.reduce(0) { $0 + $1.outputFeatures },
                            inputFeatures: first.inputFeatures, bias: bias)
    }

    /// The manifest's tensors and the options' token limit must fit the model's shape.
    private static func check(_ manifest: ModelManifest, config: BertConfig, options: BertEncoderOptions,
                              fail: (String) -> ModelLoadError) throws {
        guard options.maxTokens >= 2 && options.maxTokens <= config.maxPositions else {
            throw fail("encoder.maxTokens \(options.maxTokens) must be in 2...\(config.maxPositions) (the model's positions)")
        }
        guard manifest.inputs.count == 1, manifest.inputs[0].datatype == .bytes, manifest.inputs[0].shape == [-1] else {
            throw fail("a bert-encoder has one input: BYTES [-1] (UTF-8 texts)")
        }
        guard manifest.outputs.count == 1, manifest.outputs[0].datatype == .fp32,
              manifest.outputs[0].shape == [-1, config.hiddenSize] else {
            throw fail("a bert-encoder has one output: FP32 [-1, \(config.hiddenSize)] (the embeddings)")
        }
    }
}

/// Reads a BERT encoder's weights layer by layer through a `LinearLayerBuilder`, recording each
/// layer's summary row.
private final class BertWeightReader {
    let builder: LinearLayerBuilder
    let config: BertConfig
    let fail: (String) -> ModelLoadError
    /// Piecewise-linear GELU and exp tables when the activations are approximated.
    let tables: (gelu: PWLActivation, exp: PWLActivation)?
    private(set) var summaries: [ModelSummary.Layer] = []
    private var h: Int { config.hiddenSize }

    init(builder: LinearLayerBuilder, config: BertConfig, fail: @escaping (String) -> ModelLoadError) {
        self.builder = builder
        self.config = config
        self.fail = fail
        switch builder.activations {
        case .exact: tables = nil
        case .pwl(let segments):
            tables = (PWLActivation(.gelu, segments: segments, lo: -8, hi: 8),
                      PWLActivation(function: { Foundation.exp($0) }, name: "exp", segments: segments, lo: -12, hi: 0))
        }
    }

    func embeddings() throws -> BertEncoderModel.Embeddings {
        let weights = builder.weights
        let word = try weights.tensor(named: "embeddings.word_embeddings.weight", shape: [config.vocabularySize, h])
        let position = try weights.tensor(named: "embeddings.position_embeddings.weight", shape: [config.maxPositions, h])
        let types = try weights.tensor(named: "embeddings.token_type_embeddings.weight", shape: [config.typeVocabularySize, h])
        recordDense("embeddings", type: "embedding", inputs: config.vocabularySize, parameters: word.count + position.count + types.count)
        return .init(word: word, position: position, tokenType: Array(types[0..<h]), norm: try norm("embeddings.LayerNorm"))
    }

    func layer(_ i: Int) throws -> BertEncoderModel.Layer {
        let p = "encoder.layer.\(i)."
        let qkv = try attentionProjections(["query", "key", "value"].map { p + "attention.self." + $0 })
        let attentionOutput = try linear(p + "attention.output.dense", out: h, in: h)
        let attentionNorm = try norm(p + "attention.output.LayerNorm")
        let intermediate = try linear(p + "intermediate.dense", out: config.intermediateSize, in: h, activation: .gelu)
        let output = try linear(p + "output.dense", out: h, in: config.intermediateSize)
        return .init(qkv: qkv, attentionOutput: attentionOutput, attentionNorm: attentionNorm, intermediate: intermediate,
                     output: output, outputNorm: try norm(p + "output.LayerNorm"))
    }

    /// Query, key and value: one fused [3H × H] GEMM when all three are dense or quantized dense
    /// alike (per-row weight scales and per-token activation scales make the stacked int8 operator
    /// compute exactly what the three compute), one stacked pack when all three are N:M alike
    /// (`stackedProjection`), else three operators.
    private func attentionProjections(_ names: [String]) throws -> [any LinearOperator] {
        guard names.allSatisfy({ builder.isDense($0) }) else { return try compressedProjections(names) }
        var w: [Float] = [], b: [Float] = [], facts: [LayerCompressionFacts] = []
        for name in names {
            let layer = try builder.denseLayer(name, weight: name + ".weight", bias: name + ".bias", outputs: h, inputs: h)
            w += layer.weight
            b += layer.bias ?? [Float](repeating: 0, count: h)
            facts.append(layer.facts)
        }
        let fused = DenseWeights(weights: w, outputFeatures: 3 * h, inputFeatures: h, bias: b)
        for (name, facts) in zip(names, facts) {
            record(name, fused, facts: facts, parameters: h * h + h, bytes: fused.byteCount / 3)
        }
        return [fused]
    }

    private func compressedProjections(_ names: [String]) throws -> [any LinearOperator] {
        var built: [BuiltLinearLayer] = []
        for name in names {
            do { built.append(try builder.linear(name, weight: name + ".weight", bias: name + ".bias", outputs: h, inputs: h)) } catch let error as LayerCompressionError {
                throw fail(error.description)
            }
        }
        if let stacked = PackedLayer.stackingQuantizedDenseRows(built.map(\.packed)) {
            let fused = try stacked.makeOperator()
            for (name, layer) in zip(names, built) { record(name, fused, facts: layer.facts, parameters: fused.parameterCount / 3, bytes: fused.byteCount / 3) }
            return [fused]
        }
        for (name, layer) in zip(names, built) { record(name, layer.op, facts: layer.facts) }
        if let fused = BertEncoderLoader.stackedProjection(built.map(\.op)) { return [fused] }
        return built.map(\.op)
    }

    private func linear(_ name: String, out: Int, in inputs: Int, activation: Activation = .none) throws -> any LinearOperator {
        do {
            let built = try builder.linear(name, weight: name + ".weight", bias: name + ".bias", outputs: out, inputs: inputs)
            record(name, built.op, facts: built.facts, activation: activation)
            return built.op
        } catch let error as LayerCompressionError {
            throw fail(error.description)
        }
    }

    private func norm(_ prefix: String) throws -> BertEncoderModel.Norm {
        recordDense(prefix, type: "layer-norm", inputs: h, parameters: 2 * h)
        return (try builder.weights.tensor(named: prefix + ".weight", shape: [h]), try builder.weights.tensor(named: prefix + ".bias", shape: [h]))
    }

    /// Embedding tables and LayerNorms: stored dense, never compressed.
    private func recordDense(_ name: String, type: String, inputs: Int, parameters: Int) {
        var entry = ModelSummary.Layer(name: name, type: type, inputFeatures: inputs, outputFeatures: h, activation: nil,
                                       parameterCount: parameters, byteCount: parameters * MemoryLayout<Float>.stride)
        entry.density = 1
        summaries.append(entry)
    }

    private func record(_ name: String, _ op: any LinearOperator, facts: LayerCompressionFacts, activation: Activation = .none,
                        parameters: Int? = nil, bytes: Int? = nil) {
        var entry = ModelSummary.Layer(name: name, type: "linear", inputFeatures: op.inputFeatures,
                                       outputFeatures: parameters == nil ? op.outputFeatures : h,
                                       activation: activation == .none ? nil : activationName(activation),
                                       parameterCount: parameters ?? op.parameterCount, byteCount: bytes ?? op.byteCount)
        entry.storage = op.storage
        entry.density = parameters == nil ? op.density : 1
        entry.relativeError = facts.relativeError
        entry.compression = facts
        summaries.append(entry)
    }

    private func activationName(_ activation: Activation) -> String {
        guard let tables, activation == .gelu else { return activation.rawValue }
        return "gelu (pwl \(tables.gelu.segments) segments, max abs error \(String(format: "%.2g", tables.gelu.error.maxAbsolute)))"
    }
}
