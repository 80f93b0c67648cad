import Foundation
import SparseKernels

/// The shape of a BERT encoder, from Hugging Face's `config.json`.
public struct BertConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var layerNormEpsilon: Float
    public var maxPositions: Int
    public var vocabularySize: Int
    public var typeVocabularySize: Int

    public var headDimension: Int { hiddenSize / heads }

    /// Reads `config.json`; only the exact-erf `gelu` activation and absolute positions are supported.
    public init(file path: String) throws {
        func fail(_ message: String) -> ModelLoadError { ModelLoadError(file: path, message) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("file does not exist or cannot be read") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw fail("not a JSON object") }
        func int(_ key: String) throws -> Int {
            guard let v = json[key] as? Int, v > 0 else { throw fail("'\(key)' must be a positive integer") }
            return v
        }
        hiddenSize = try int("hidden_size")
        layers = try int("num_hidden_layers")
        heads = try int("num_attention_heads")
        intermediateSize = try int("intermediate_size")
        maxPositions = try int("max_position_embeddings")
        vocabularySize = try int("vocab_size")
        typeVocabularySize = try int("type_vocab_size")
        guard let eps = json["layer_norm_eps"] as? Double, eps > 0 else { throw fail("'layer_norm_eps' must be a positive number") }
        layerNormEpsilon = Float(eps)
        guard hiddenSize % heads == 0 else { throw fail("hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(heads)") }
        let act = json["hidden_act"] as? String ?? "gelu"
        guard act == "gelu" else { throw fail("hidden_act '\(act)' is not supported (only the exact erf 'gelu')") }
        let positions = json["position_embedding_type"] as? String ?? "absolute"
        guard positions == "absolute" else { throw fail("position_embedding_type '\(positions)' is not supported (only 'absolute')") }
    }
}

/// How token vectors become one sentence vector, and the tokenizer's limits: the `"encoder"`
/// block of `model.json`. Keys left out fall back to the sentence-transformers files of the model
/// folder (`1_Pooling/config.json`, `modules.json` for Normalize, `sentence_bert_config.json`'s
/// `max_seq_length`, `tokenizer_config.json`'s `do_lower_case`), then to mean / false / the
/// position count / true.
public struct BertEncoderOptions: Sendable, Equatable {
    public enum Pooling: String, Sendable, Codable {
        /// Mean over the sequence's tokens (including `[CLS]` and `[SEP]`, like sentence-transformers).
        case mean
        /// The `[CLS]` token's vector.
        case cls
    }

    public var pooling: Pooling
    /// Scale each embedding to unit L2 norm.
    public var normalize: Bool
    /// Longest token sequence (with `[CLS]` and `[SEP]`); longer texts are truncated by `embed(texts:)`.
    public var maxTokens: Int
    public var lowercase: Bool

    public init(pooling: Pooling = .mean, normalize: Bool = true, maxTokens: Int = 512, lowercase: Bool = true) {
        self.pooling = pooling
        self.normalize = normalize
        self.maxTokens = maxTokens
        self.lowercase = lowercase
    }

    /// The `"encoder"` block as written (every key optional, unknown keys rejected).
    struct Block: Decodable {
        var pooling: Pooling?
        var normalize: Bool?
        var maxTokens: Int?
        var lowercase: Bool?

        enum CodingKeys: String, CodingKey, CaseIterable { case pooling, normalize, maxTokens, lowercase }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            pooling = try c.decodeIfPresent(Pooling.self, forKey: .pooling)
            normalize = try c.decodeIfPresent(Bool.self, forKey: .normalize)
            maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
            lowercase = try c.decodeIfPresent(Bool.self, forKey: .lowercase)
        }
    }

    /// Options from the manifest's block, completed from the sentence-transformers files in `directory`.
    static func resolve(_ block: Block?, directory: String, maxPositions: Int) -> BertEncoderOptions {
        func json(_ file: String) -> [String: Any]? {
            FileManager.default.contents(atPath: ModelLoader.path(directory, file))
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        }
        var options = BertEncoderOptions(maxTokens: maxPositions)
        if let pooling = json("1_Pooling/config.json") {
            options.pooling = pooling["pooling_mode_cls_token"] as? Bool == true ? .cls : .mean
        }
        let modules = FileManager.default.contents(atPath: ModelLoader.path(directory, "modules.json"))
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [[String: Any]] }
        options.normalize = modules?.contains { ($0["type"] as? String)?.hasSuffix(".Normalize") == true } ?? false
        if let length = json("sentence_bert_config.json")?["max_seq_length"] as? Int { options.maxTokens = length }
        if let lower = json("tokenizer_config.json")?["do_lower_case"] as? Bool { options.lowercase = lower }
        if let block {
            options.pooling = block.pooling ?? options.pooling
            options.normalize = block.normalize ?? options.normalize
            options.maxTokens = block.maxTokens ?? options.maxTokens
            options.lowercase = block.lowercase ?? options.lowercase
        }
        return options
    }
}

/// A BERT sentence encoder (e.g. sentence-transformers/all-MiniLM-L6-v2) read from a Hugging Face
/// folder: `model.safetensors` with BERT's tensor names (no `bert.` prefix), `config.json`,
/// `vocab.txt`, plus our `model.json`.
///
/// Forward pass: word + position + token-type embeddings and LayerNorm; per layer multi-head
/// self-attention (each sequence attends only to its own tokens), output projection, residual +
/// LayerNorm, exact-erf GELU feed-forward, residual + LayerNorm; then mean (or `[CLS]`) pooling
/// and optional L2 normalisation. The tokens of a whole batch are packed back to back without
/// padding, so every linear layer is one GEMM whose M dimension is the batch's token count, and a
/// text gets the same vector alone or in any batch. Linear layers are `LinearOperator`s built by
/// the compression plan (layer names are the tensor prefixes, e.g.
/// `encoder.layer.0.intermediate.dense`); when query, key and value are all dense they run as one
/// fused GEMM. Immutable after loading and safe to call from many threads.
public final class BertEncoderModel: InferenceModel, SummarizedModel, @unchecked Sendable {
    public let architecture = "bert-encoder"
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let config: BertConfig
    public let options: BertEncoderOptions
    public let tokenizer: WordPieceTokenizer
    public let summary: ModelSummary
    /// Length of each embedding (the hidden size).
    public var dimension: Int { config.hiddenSize }

    private struct Layer {
        /// Either one fused [3H × H] operator (query, key, value rows) or three [H × H] ones.
        var qkv: [any LinearOperator]
        var attentionOutput: any LinearOperator
        var attentionNorm: (gamma: [Float], beta: [Float])
        var intermediate: any LinearOperator
        var output: any LinearOperator
        var outputNorm: (gamma: [Float], beta: [Float])
    }

    private let wordEmbeddings: [Float]
    private let positionEmbeddings: [Float]
    private let tokenTypeEmbedding: [Float]
    private let embeddingNorm: (gamma: [Float], beta: [Float])
    private let layers: [Layer]
    private let pool: KernelPool
    /// Piecewise-linear GELU and softmax exp (`compression.activations`), or nil for the exact ones.
    private let geluTable: PWLActivation?
    private let expTable: PWLActivation?

    /// Reads `model.json` of a bert-encoder folder, or nil when the manifest names another
    /// architecture. The manifest's `"encoder"` block (which `ModelManifest` does not know) is
    /// taken out before the rest is decoded and validated as usual.
    static func manifest(at path: String) throws -> (ModelManifest, BertEncoderOptions.Block?)? {
        guard let data = FileManager.default.contents(atPath: path),
              var json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              json["architecture"] as? String == "bert-encoder" else { return nil }
        var block: BertEncoderOptions.Block?
        if let encoder = json.removeValue(forKey: "encoder") {
            do {
                let encoded = try JSONSerialization.data(withJSONObject: encoder, options: [.fragmentsAllowed])
                block = try JSONDecoder().decode(BertEncoderOptions.Block.self, from: encoded)
            } catch let error as DecodingError {
                throw ModelLoadError(file: path, "invalid manifest: encoder: \(error.conciseDescription)")
            }
        }
        let rest = try JSONSerialization.data(withJSONObject: json)
        return (try ModelManifest.decode(rest, source: path), block)
    }

    /// Loads the model in `directory` (see the type's description for the files).
    public convenience init(directory: String, compression: CompressionPlan = .dense, pool: KernelPool = .shared) throws {
        let manifestPath = ModelLoader.path(directory, ModelLoader.manifestFileName)
        guard FileManager.default.fileExists(atPath: manifestPath) else { throw ModelLoadError(file: manifestPath, "file does not exist") }
        guard let (manifest, block) = try Self.manifest(at: manifestPath) else {
            throw ModelLoadError(file: manifestPath, "not a bert-encoder manifest")
        }
        let layers = try LinearLayerBuilder(directory: directory, manifest: manifest, manifestPath: manifestPath, plan: compression)
        try self.init(directory: directory, manifest: manifest, encoderBlock: block, layers: layers, pool: pool)
        try layers.finish()
    }

    /// Builds the encoder; its linear layers come from `builder` (compressed at load, or read
    /// from an artifact), everything else from `builder.weights`.
    init(directory: String, manifest: ModelManifest, encoderBlock: BertEncoderOptions.Block?,
         layers builder: LinearLayerBuilder, pool: KernelPool = .shared) throws {
        let manifestPath = ModelLoader.path(directory, ModelLoader.manifestFileName)
        func fail(_ message: String) -> ModelLoadError { ModelLoadError(file: manifestPath, message) }
        let config = try BertConfig(file: ModelLoader.path(directory, "config.json"))
        let options = BertEncoderOptions.resolve(encoderBlock, directory: directory, maxPositions: config.maxPositions)
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
        let tokenizer = try WordPieceTokenizer(vocabularyFile: ModelLoader.path(directory, "vocab.txt"), lowercase: options.lowercase)
        guard tokenizer.vocabularySize == config.vocabularySize else {
            throw fail("vocab.txt has \(tokenizer.vocabularySize) tokens, config.json says \(config.vocabularySize)")
        }

        let weights = builder.weights
        let h = config.hiddenSize, ffn = config.intermediateSize
        func vector(_ name: String, _ count: Int) throws -> [Float] { try weights.tensor(named: name, shape: [count]) }
        var summaries: [ModelSummary.Layer] = []
        let tables: (gelu: PWLActivation, exp: PWLActivation)?
        switch builder.activations {
        case .exact: tables = nil
        case .pwl(let segments):
            tables = (PWLActivation(.gelu, segments: segments, lo: -8, hi: 8),
                      PWLActivation(function: { Foundation.exp($0) }, name: "exp", segments: segments, lo: -12, hi: 0))
        }
        func activationName(_ activation: Activation) -> String {
            guard let tables, activation == .gelu else { return activation.rawValue }
            return "gelu (pwl \(tables.gelu.segments) segments, max abs error \(String(format: "%.2g", tables.gelu.error.maxAbsolute)))"
        }
        /// Embedding tables and LayerNorms: stored dense, never compressed.
        func recordDense(_ name: String, type: String, inputs: Int, parameters: Int) {
            var entry = ModelSummary.Layer(name: name, type: type, inputFeatures: inputs, outputFeatures: h, activation: nil,
                                           parameterCount: parameters, byteCount: parameters * MemoryLayout<Float>.stride)
            entry.density = 1
            summaries.append(entry)
        }
        func norm(_ prefix: String) throws -> (gamma: [Float], beta: [Float]) {
            recordDense(prefix, type: "layer-norm", inputs: h, parameters: 2 * h)
            return (try vector(prefix + ".weight", h), try vector(prefix + ".bias", h))
        }
        func record(_ name: String, _ op: any LinearOperator, facts: LayerCompressionFacts, activation: Activation = .none,
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
        func linear(_ name: String, out: Int, in inputs: Int, activation: Activation = .none) throws -> any LinearOperator {
            do {
                let built = try builder.linear(name, weight: name + ".weight", bias: name + ".bias", outputs: out, inputs: inputs)
                record(name, built.op, facts: built.facts, activation: activation)
                return built.op
            } catch let error as LayerCompressionError {
                throw fail(error.description)
            }
        }

        wordEmbeddings = try weights.tensor(named: "embeddings.word_embeddings.weight", shape: [config.vocabularySize, h])
        positionEmbeddings = try weights.tensor(named: "embeddings.position_embeddings.weight", shape: [config.maxPositions, h])
        let types = try weights.tensor(named: "embeddings.token_type_embeddings.weight", shape: [config.typeVocabularySize, h])
        tokenTypeEmbedding = Array(types[0..<h])
        recordDense("embeddings", type: "embedding", inputs: config.vocabularySize,
                    parameters: wordEmbeddings.count + positionEmbeddings.count + types.count)
        embeddingNorm = try norm("embeddings.LayerNorm")

        var layers: [Layer] = []
        for i in 0..<config.layers {
            let p = "encoder.layer.\(i)."
            let projections = ["query", "key", "value"].map { p + "attention.self." + $0 }
            let qkv: [any LinearOperator]
            if projections.allSatisfy({ builder.isDense($0) }) {
                // One [3H × H] GEMM instead of three.
                var w: [Float] = [], b: [Float] = [], facts: [LayerCompressionFacts] = []
                for name in projections {
                    let layer = try builder.denseLayer(name, weight: name + ".weight", bias: name + ".bias", outputs: h, inputs: h)
                    w += layer.weight
                    b += layer.bias ?? [Float](repeating: 0, count: h)
                    facts.append(layer.facts)
                }
                let fused = DenseWeights(weights: w, outputFeatures: 3 * h, inputFeatures: h, bias: b)
                for (name, facts) in zip(projections, facts) {
                    record(name, fused, facts: facts, parameters: h * h + h, bytes: fused.byteCount / 3)
                }
                qkv = [fused]
            } else {
                qkv = try projections.map { try linear($0, out: h, in: h) }
            }
            let attentionOutput = try linear(p + "attention.output.dense", out: h, in: h)
            let attentionNorm = try norm(p + "attention.output.LayerNorm")
            let intermediate = try linear(p + "intermediate.dense", out: ffn, in: h, activation: .gelu)
            let output = try linear(p + "output.dense", out: h, in: ffn)
            layers.append(Layer(qkv: qkv, attentionOutput: attentionOutput, attentionNorm: attentionNorm,
                                intermediate: intermediate, output: output, outputNorm: try norm(p + "output.LayerNorm")))
        }

        self.config = config
        self.options = options
        self.tokenizer = tokenizer
        self.layers = layers
        self.pool = pool
        geluTable = tables?.gelu
        expTable = tables?.exp
        inputs = manifest.inputs
        outputs = manifest.outputs
        var summary = ModelSummary(architecture: "bert-encoder", name: manifest.name, layers: summaries)
        summary.artifact = builder.artifact?.provenance
        self.summary = summary
    }

    // MARK: Public API

    /// Token ids of each text (`[CLS]` … `[SEP]`), cut to `options.maxTokens` when `truncate` is
    /// set; `Encoding.untruncatedCount` tells how long each text really is.
    public func encode(texts: [String], truncate: Bool = true) -> [WordPieceTokenizer.Encoding] {
        texts.map { tokenizer.encode($0, maxTokens: truncate ? options.maxTokens : nil) }
    }

    /// Sentence embeddings of `texts` (each truncated to `options.maxTokens` tokens, as
    /// sentence-transformers does), one `dimension`-long vector per text.
    public func embed(texts: [String]) throws -> [[Float]] {
        try embed(tokenSequences: encode(texts: texts).map(\.ids))
    }

    /// Embeddings of complete token sequences (with `[CLS]`/`[SEP]`, as `encode` returns them).
    /// Each needs 1 ... `config.maxPositions` ids below the vocabulary size (else `InvalidInputError`).
    public func embed(tokenSequences: [[Int32]]) throws -> [[Float]] {
        let flat = try forward(tokenSequences)
        return (0..<tokenSequences.count).map { Array(flat[$0 * dimension ..< ($0 + 1) * dimension]) }
    }

    public func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let spec = self.inputs[0]
        if inputs[spec.name] == nil, let ids = inputs[tokenIDsInputName] {
            guard case .int32(let flat) = ids.storage, ids.shape.count == 2, ids.shape[1] > 0 else {
                throw InvalidInputError("input '\(tokenIDsInputName)' must be INT32 [n, length] (rows padded with -1)")
            }
            let width = ids.shape[1]
            let sequences = (0..<ids.shape[0]).map { row in
                Array(flat[(row * width)..<((row + 1) * width)].prefix { $0 >= 0 })
            }
            let values = try forward(sequences)
            return [outputs[0].name: Tensor(shape: [sequences.count, dimension], storage: .fp32(values))]
        }
        guard let tensor = inputs[spec.name] else { throw InvalidInputError("missing input '\(spec.name)'") }
        guard case .bytes(let texts) = tensor.storage else {
            throw InvalidInputError("input '\(spec.name)' must be BYTES (UTF-8 texts), got \(tensor.datatype.rawValue)")
        }
        let ids = try texts.enumerated().map { i, bytes in
            do {
                return try tokenizer.encode(utf8: bytes, maxTokens: options.maxTokens).ids
            } catch let error as InvalidInputError {
                throw InvalidInputError("input '\(spec.name)'[\(i)]: \(error.description)")
            }
        }
        let values = try forward(ids)
        return [outputs[0].name: Tensor(shape: [texts.count, dimension], storage: .fp32(values))]
    }

    // MARK: Forward pass

    /// Row-major `[sequences.count, dimension]` embeddings.
    ///
    /// With several kernel threads and a batch that splits into token groups of about equal cost,
    /// each thread encodes its own group of whole sequences from start to finish (no hand-off
    /// between layers); otherwise the batch runs as one group with every layer split across the
    /// pool. Either way each sequence's vector is the same as when it is encoded alone.
    func forward(_ sequences: [[Int32]], isa: InstructionSet = .current) throws -> [Float] {
        for (i, ids) in sequences.enumerated() {
            guard !ids.isEmpty, ids.count <= config.maxPositions else {
                throw InvalidInputError("sequence \(i) has \(ids.count) tokens; the model takes 1...\(config.maxPositions)")
            }
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw InvalidInputError("sequence \(i) has token id \(bad), outside 0..<\(config.vocabularySize)")
            }
        }
        let h = config.hiddenSize
        var result = [Float](repeating: 0, count: sequences.count * h)
        guard !sequences.isEmpty else { return result }
        let groups = Self.groups(lengths: sequences.map(\.count), parts: pool.threadCount, splitThreshold: Self.groupSplitFlops)
        result.withUnsafeMutableBufferPointer { out in
            let output = UnsafeSendableMutablePointer(out.baseAddress!)
            if groups.count == 1 {
                encode(sequences[...], into: output.pointer, pool: pool, isa: isa)
            } else {
                pool.run(parts: groups.count) { [self] g in
                    let range = groups[g]
                    encode(sequences[range], into: output.pointer + range.lowerBound * h, pool: nil, isa: isa)
                }
            }
        }
        return result
    }

    /// Work below which a batch is not split into per-thread groups (≈ 2 ms on one core).
    static let groupSplitFlops = 200_000_000

    /// Contiguous ranges of sequences, one per thread, of about equal cost (linear layers grow
    /// with the token count, attention with its square); a single range when the batch is small
    /// or cannot be balanced within 25 %.
    static func groups(lengths: [Int], parts: Int, splitThreshold: Int) -> [Range<Int>] {
        let whole = [0..<lengths.count]
        guard parts > 1, lengths.count >= parts else { return whole }
        let costs = lengths.map { $0 * (2300 + $0) }  // ≈ flops / 9216 for MiniLM-sized layers
        let total = costs.reduce(0, +)
        guard total * 9216 >= splitThreshold else { return whole }
        var ranges: [Range<Int>] = [], start = 0, accumulated = 0
        for part in 1...parts {
            let target = total * part / parts
            var end = start
            while end < lengths.count && (part == parts || accumulated + costs[end] / 2 < target || end == start) {
                accumulated += costs[end]
                end += 1
            }
            ranges.append(start..<end)
            start = end
        }
        let largest = ranges.map { costs[$0].reduce(0, +) }.max() ?? total
        return ranges.allSatisfy { !$0.isEmpty } && largest * 4 <= total * 5 / parts ? ranges : whole
    }

    /// Encodes `sequences` packed back to back into `output` (`dimension` floats each), splitting
    /// every layer across `pool` when given.
    private func encode(_ sequences: ArraySlice<[Int32]>, into output: UnsafeMutablePointer<Float>, pool: KernelPool?,
                        isa: InstructionSet) {
        let h = config.hiddenSize, ffn = config.intermediateSize
        var spans: [TransformerKernels.Sequence] = [], tokens = 0
        for ids in sequences {
            spans.append(.init(start: tokens, length: ids.count))
            tokens += ids.count
        }

        // Workspace: x (hidden states), y (scratch), q/k/v, attention context, FFN activations.
        let sizes = [tokens * h, tokens * h, tokens * 3 * h, tokens * h, tokens * ffn]
        let workspace = UnsafeMutablePointer<Float>.allocate(capacity: sizes.reduce(0, +))
        defer { workspace.deallocate() }
        var x = workspace, y = workspace + sizes[0]
        let qkv = y + sizes[1], context = qkv + sizes[2], hidden = context + sizes[3]

        // Embeddings: word + token type 0, then + position inside the LayerNorm's residual add.
        wordEmbeddings.withUnsafeBufferPointer { word in
            tokenTypeEmbedding.withUnsafeBufferPointer { type in
                var row = x
                for ids in sequences {
                    for id in ids {
                        let w = word.baseAddress! + Int(id) * h
                        for c in 0..<h { row[c] = w[c] + type[c] }
                        row += h
                    }
                }
            }
        }
        positionEmbeddings.withUnsafeBufferPointer { positions in
            withNorm(embeddingNorm) { gamma, beta in
                for span in spans {
                    TransformerKernels.addLayerNorm(x + span.start * h, rows: span.length, columns: h,
                                                    residual: positions.baseAddress!, gamma: gamma, beta: beta,
                                                    epsilon: config.layerNormEpsilon, isa: isa)
                }
            }
        }

        let heads = config.heads, d = config.headDimension
        let scale = 1 / Float(d).squareRoot()
        for layer in layers {
            // q, k, v side by side in one [T × 3H] matrix: one fused GEMM, or three writing their columns.
            for (j, op) in layer.qkv.enumerated() {
                run(op, x, rows: tokens, into: qkv + j * h, outputStride: 3 * h, activation: .none, pool: pool, isa: isa)
            }
            let (q, k, v, stride) = (qkv, qkv + h, qkv + 2 * h, 3 * h)
            TransformerKernels.attention(query: q, queryStride: stride, key: k, keyStride: stride, value: v, valueStride: stride,
                                         output: context, outputStride: h, sequences: spans, heads: heads, headDimension: d,
                                         scale: scale, exp: expTable, pool: pool, isa: isa)
            run(layer.attentionOutput, context, rows: tokens, into: y, activation: .none, pool: pool, isa: isa)
            withNorm(layer.attentionNorm) { gamma, beta in
                TransformerKernels.addLayerNorm(y, rows: tokens, columns: h, residual: x, gamma: gamma, beta: beta,
                                                epsilon: config.layerNormEpsilon, isa: isa)
            }
            swap(&x, &y)
            if let geluTable {
                run(layer.intermediate, x, rows: tokens, into: hidden, activation: .none, pool: pool, isa: isa)
                geluTable.apply(hidden, count: tokens * ffn, isa: isa)
            } else {
                run(layer.intermediate, x, rows: tokens, into: hidden, activation: .gelu, pool: pool, isa: isa)
            }
            run(layer.output, hidden, rows: tokens, into: y, activation: .none, pool: pool, isa: isa)
            withNorm(layer.outputNorm) { gamma, beta in
                TransformerKernels.addLayerNorm(y, rows: tokens, columns: h, residual: x, gamma: gamma, beta: beta,
                                                epsilon: config.layerNormEpsilon, isa: isa)
            }
            swap(&x, &y)
        }

        for (i, span) in spans.enumerated() {
            let rows = options.pooling == .cls ? 1 : span.length
            TransformerKernels.meanPool(x + span.start * h, rows: rows, columns: h, normalize: options.normalize, into: output + i * h)
        }
    }

    private func withNorm(_ norm: (gamma: [Float], beta: [Float]), _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> Void) {
        norm.gamma.withUnsafeBufferPointer { g in norm.beta.withUnsafeBufferPointer { b in body(g.baseAddress!, b.baseAddress!) } }
    }

    /// `y = activation(x · Wᵀ + b)` for `rows` rows (row strides `inputStride`/`outputStride`,
    /// default dense), split across `pool` by the operator itself when the call is large enough.
    private func run(_ op: any LinearOperator, _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                     outputStride: Int? = nil, activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        op.apply(x, rows: rows, inputStride: op.inputFeatures, into: y, outputStride: outputStride ?? op.outputFeatures,
                 activation: activation, pool: pool, isa: isa)
    }
}

/// The output pointer handed to the per-group workers; the caller keeps it alive until `run` returns.
private struct UnsafeSendableMutablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}

extension BertEncoderModel: TextEncodingModel {
    public var maxTokens: Int { options.maxTokens }

    public func tokenize(utf8: [UInt8], limit: Int?) throws -> (ids: [Int32], fullCount: Int) {
        let encoding = try tokenizer.encode(utf8: utf8, maxTokens: limit)
        return (encoding.ids, encoding.untruncatedCount)
    }

    public func prepare(tokenIDs: [Int32], limit: Int?) throws -> (ids: [Int32], fullCount: Int) {
        if let bad = tokenIDs.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw InvalidInputError("token id \(bad) is outside the vocabulary (0..<\(config.vocabularySize))")
        }
        var ids = tokenIDs
        if ids.first != tokenizer.clsID { ids.insert(tokenizer.clsID, at: 0) }
        if ids.count < 2 || ids.last != tokenizer.sepID { ids.append(tokenizer.sepID) }
        let total = ids.count
        if let limit { WordPieceTokenizer.truncate(&ids, to: limit) }
        return (ids, total)
    }
}
