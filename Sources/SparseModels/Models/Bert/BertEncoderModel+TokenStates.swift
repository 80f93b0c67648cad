import SparseKernels

/// A text encoder that also gives what its pooling hides: every token's last hidden state (TEI's
/// `/embed_all`) and sentence vectors pooled without L2 normalisation (TEI's `normalize: false`
/// on a model that normalises).
public protocol TokenStatesModel: TextEncodingModel {
    /// Length of a token state and of a sentence vector.
    var hiddenSize: Int { get }
    /// Whether the model's own sentence vectors (`infer`) are L2-normalised.
    var normalizesEmbeddings: Bool { get }
    /// Last-layer hidden states of complete token sequences, packed back to back:
    /// `[Σ sequence lengths × hiddenSize]`, row-major.
    func tokenStates(_ sequences: [[Int32]]) throws -> [Float]
    /// Sentence vectors `[n × hiddenSize]` pooled as the model pools, L2-normalised only when `normalize`.
    func pooledEmbeddings(_ sequences: [[Int32]], normalize: Bool) throws -> [Float]
}

extension BertEncoderModel: TokenStatesModel {
    public var hiddenSize: Int { config.hiddenSize }
    public var normalizesEmbeddings: Bool { options.normalize }

    public func tokenStates(_ sequences: [[Int32]]) throws -> [Float] {
        try lastHiddenStates(sequences) { x, _, tokens in Array(UnsafeBufferPointer(start: x, count: tokens * config.hiddenSize)) }
    }

    public func pooledEmbeddings(_ sequences: [[Int32]], normalize: Bool) throws -> [Float] {
        let h = config.hiddenSize
        return try lastHiddenStates(sequences) { x, spans, _ in
            var out = [Float](repeating: 0, count: spans.count * h)
            out.withUnsafeMutableBufferPointer { o in
                for (i, span) in spans.enumerated() {
                    let rows = options.pooling == .cls ? 1 : span.length
                    TransformerKernels.meanPool(x + span.start * h, rows: rows, columns: h, normalize: normalize, into: o.baseAddress! + i * h)
                }
            }
            return out
        }
    }

    /// Runs every layer over `sequences` packed back to back (each layer split across the pool)
    /// and hands the last hidden states, the spans and the token count to `read`.
    private func lastHiddenStates<T>(_ sequences: [[Int32]], isa: InstructionSet = .current,
                                     read: (UnsafeMutablePointer<Float>, [TransformerKernels.Sequence], Int) -> T) throws -> T {
        for (i, ids) in sequences.enumerated() where ids.isEmpty || ids.count > config.maxPositions
            || ids.contains(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw InvalidInputError("sequence \(i) must have 1...\(config.maxPositions) token ids in 0..<\(config.vocabularySize)")
        }
        let (spans, tokens) = Self.spans(of: sequences)
        var w = Workspace(tokens: tokens, hidden: config.hiddenSize, ffn: config.intermediateSize)
        defer { w.deallocate() }
        guard tokens > 0 else { return read(w.x, spans, 0) }
        embed(sequences, spans: spans, into: w.x, isa: isa)
        for layer in layers {
            var layer = layer
            forwardLayer(&layer, &w, spans: spans, pool: pool, isa: isa) { _, _, _ in }
        }
        return read(w.x, spans, tokens)
    }
}
