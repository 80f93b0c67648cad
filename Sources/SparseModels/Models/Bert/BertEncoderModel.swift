import Foundation
import SparseKernels

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
/// `encoder.layer.0.intermediate.dense`); when query, key and value are all dense, or all N:M
/// alike, they run as one fused operator. Immutable after loading and safe to call from many threads.
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

    /// One encoder layer: attention projections, feed-forward and their LayerNorms.
    struct Layer {
        /// Either one fused [3H × H] operator (query, key, value rows) or three [H × H] ones.
        var qkv: [any LinearOperator]
        var attentionOutput: any LinearOperator
        var attentionNorm: Norm
        var intermediate: any LinearOperator
        var output: any LinearOperator
        var outputNorm: Norm
    }

    typealias Norm = (gamma: [Float], beta: [Float])

    /// Word, position and token-type-0 embeddings and their LayerNorm (stored dense).
    struct Embeddings {
        var word: [Float]
        var position: [Float]
        var tokenType: [Float]
        var norm: Norm
    }

    let embeddings: Embeddings
    let layers: [Layer]
    let pool: KernelPool
    /// Piecewise-linear GELU and softmax exp (`compression.activations`), or nil for the exact ones.
    let geluTable: PWLActivation?
    let expTable: PWLActivation?

    /// Assembles a loaded encoder (`BertEncoderLoader` reads the files and builds the parts).
    init(config: BertConfig, options: BertEncoderOptions, tokenizer: WordPieceTokenizer, embeddings: Embeddings, layers: [Layer],
         tables: (gelu: PWLActivation, exp: PWLActivation)?, inputs: [TensorSpec], outputs: [TensorSpec], summary: ModelSummary,
         pool: KernelPool) {
        self.config = config
        self.options = options
        self.tokenizer = tokenizer
        self.embeddings = embeddings
        self.layers = layers
        self.pool = pool
        geluTable = tables?.gelu
        expTable = tables?.exp
        self.inputs = inputs
        self.outputs = outputs
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
    /// pool. A thread encoding a group alone does so in runs of about 128 tokens (L2-sized, see
    /// `BertBatchSplit.cacheTokens`). Either way each sequence's vector is the same as when it is
    /// encoded alone.
    func forward(_ sequences: [[Int32]], isa: InstructionSet = .current) throws -> [Float] {
        try validate(sequences)
        let h = config.hiddenSize
        var result = [Float](repeating: 0, count: sequences.count * h)
        guard !sequences.isEmpty else { return result }
        let groups = BertBatchSplit.groups(lengths: sequences.map(\.count), parts: pool.threadCount,
                                            splitThreshold: BertBatchSplit.splitThresholdFlops)
        result.withUnsafeMutableBufferPointer { out in
            let output = UnsafeSendableMutablePointer(out.baseAddress!)
            if groups.count == 1 && pool.threadCount > 1 {
                encode(sequences[...], into: output.pointer, pool: pool, isa: isa)
            } else if groups.count == 1 {
                encodeInCacheGroups(sequences[...], into: output.pointer, isa: isa)
            } else {
                pool.run(parts: groups.count) { [self] g in
                    let range = groups[g]
                    encodeInCacheGroups(sequences[range], into: output.pointer + range.lowerBound * h, isa: isa)
                }
            }
        }
        return result
    }

    /// Encodes `sequences` on the calling thread in runs of about `BertBatchSplit.cacheTokens`
    /// tokens, so that each run's activations stay in L2 (the vectors are the same either way).
    private func encodeInCacheGroups(_ sequences: ArraySlice<[Int32]>, into output: UnsafeMutablePointer<Float>,
                                     isa: InstructionSet) {
        let limit = BertBatchSplit.cacheTokens(ffn: config.intermediateSize)
        for range in BertBatchSplit.cacheGroups(lengths: sequences.map(\.count), limit: limit) {
            let first = sequences.startIndex + range.lowerBound
            encode(sequences[first ..< first + range.count], into: output + range.lowerBound * config.hiddenSize, pool: nil,
                   isa: isa)
        }
    }

    /// Encodes `sequences` packed back to back into `output` (`dimension` floats each), splitting
    /// every layer across `pool` when given.
    private func encode(_ sequences: ArraySlice<[Int32]>, into output: UnsafeMutablePointer<Float>, pool: KernelPool?,
                        isa: InstructionSet) {
        let h = config.hiddenSize, ffn = config.intermediateSize
        let (spans, tokens) = Self.spans(of: sequences)
        var w = Workspace(tokens: tokens, hidden: h, ffn: ffn)
        defer { w.deallocate() }
        embed(sequences, spans: spans, into: w.x, isa: isa)
        for layer in layers {
            var layer = layer
            forwardLayer(&layer, &w, spans: spans, pool: pool, isa: isa) { _, _, _ in }
        }
        let x = w.x

        for (i, span) in spans.enumerated() {
            let rows = options.pooling == .cls ? 1 : span.length
            TransformerKernels.meanPool(x + span.start * h, rows: rows, columns: h, normalize: options.normalize, into: output + i * h)
        }
    }

    /// Buffers of one forward pass: x (hidden states), y (scratch), q/k/v side by side, the
    /// attention context, the FFN activations.
    struct Workspace {
        var x, y: UnsafeMutablePointer<Float>
        let qkv, context, hidden: UnsafeMutablePointer<Float>
        private let base: UnsafeMutablePointer<Float>

        init(tokens: Int, hidden h: Int, ffn: Int) {
            let sizes = [tokens * h, tokens * h, tokens * 3 * h, tokens * h, tokens * ffn]
            base = UnsafeMutablePointer<Float>.allocate(capacity: max(1, sizes.reduce(0, +)))
            x = base
            y = base + sizes[0]
            qkv = y + sizes[1]
            context = qkv + sizes[2]
            hidden = context + sizes[3]
        }

        func deallocate() { base.deallocate() }
    }

    /// Where each sequence sits when packed back to back, and the token count.
    static func spans<C: Collection<[Int32]>>(of sequences: C) -> ([TransformerKernels.Sequence], Int) {
        var spans: [TransformerKernels.Sequence] = [], tokens = 0
        for ids in sequences {
            spans.append(.init(start: tokens, length: ids.count))
            tokens += ids.count
        }
        return (spans, tokens)
    }

    /// The four linear stages of an encoder layer, in order: query/key/value (on x), attention
    /// output (on the context), intermediate (on x after attention), output (on the GELU activations).
    enum Stage: Int, CaseIterable { case qkv, attentionOutput, intermediate, output }

    /// Word + token type 0 embeddings, then + position inside the LayerNorm's residual add, into x.
    func embed<C: Collection<[Int32]>>(_ sequences: C, spans: [TransformerKernels.Sequence], into x: UnsafeMutablePointer<Float>,
                                       isa: InstructionSet) {
        let h = config.hiddenSize
        embeddings.word.withUnsafeBufferPointer { word in
            embeddings.tokenType.withUnsafeBufferPointer { type in
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
        embeddings.position.withUnsafeBufferPointer { positions in
            withNorm(embeddings.norm) { gamma, beta in
                for span in spans {
                    TransformerKernels.addLayerNorm(x + span.start * h, rows: span.length, columns: h,
                                                    residual: positions.baseAddress!, gamma: gamma, beta: beta,
                                                    epsilon: config.layerNormEpsilon, isa: isa)
                }
            }
        }
    }

    /// One encoder layer over `w` (x in, x out). `before` sees each stage's input ahead of the
    /// stage and may replace the layer's operators (layer-by-layer calibration); a no-op for inference.
    func forwardLayer(_ layer: inout Layer, _ w: inout Workspace, spans: [TransformerKernels.Sequence], pool: KernelPool?,
                      isa: InstructionSet, before: (Stage, inout Layer, UnsafePointer<Float>) throws -> Void) rethrows {
        let h = config.hiddenSize, ffn = config.intermediateSize, tokens = spans.last.map { $0.start + $0.length } ?? 0
        let (heads, d) = (config.heads, config.headDimension)
        try before(.qkv, &layer, w.x)
        // q, k, v side by side in one [T × 3H] matrix: one fused GEMM, or three writing their columns.
        for (j, op) in layer.qkv.enumerated() {
            run(op, w.x, rows: tokens, into: w.qkv + j * h, outputStride: 3 * h, activation: .none, pool: pool, isa: isa)
        }
        let (q, k, v, stride) = (w.qkv, w.qkv + h, w.qkv + 2 * h, 3 * h)
        TransformerKernels.attention(query: q, queryStride: stride, key: k, keyStride: stride, value: v, valueStride: stride,
                                     output: w.context, outputStride: h, sequences: spans, heads: heads, headDimension: d,
                                     scale: 1 / Float(d).squareRoot(), exp: expTable, pool: pool, isa: isa)
        try before(.attentionOutput, &layer, w.context)
        run(layer.attentionOutput, w.context, rows: tokens, into: w.y, activation: .none, pool: pool, isa: isa)
        addNorm(layer.attentionNorm, &w, rows: tokens, isa: isa)
        try before(.intermediate, &layer, w.x)
        if let geluTable {
            run(layer.intermediate, w.x, rows: tokens, into: w.hidden, activation: .none, pool: pool, isa: isa)
            geluTable.apply(w.hidden, count: tokens * ffn, isa: isa)
        } else {
            run(layer.intermediate, w.x, rows: tokens, into: w.hidden, activation: .gelu, pool: pool, isa: isa)
        }
        try before(.output, &layer, w.hidden)
        run(layer.output, w.hidden, rows: tokens, into: w.y, activation: .none, pool: pool, isa: isa)
        addNorm(layer.outputNorm, &w, rows: tokens, isa: isa)
    }

    /// y = LayerNorm(y + x), then x and y trade places.
    private func addNorm(_ norm: Norm, _ w: inout Workspace, rows: Int, isa: InstructionSet) {
        let (x, y) = (w.x, w.y)
        withNorm(norm) { gamma, beta in
            TransformerKernels.addLayerNorm(y, rows: rows, columns: config.hiddenSize, residual: x, gamma: gamma, beta: beta,
                                            epsilon: config.layerNormEpsilon, isa: isa)
        }
        swap(&w.x, &w.y)
    }

    private func withNorm(_ norm: Norm, _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> Void) {
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
