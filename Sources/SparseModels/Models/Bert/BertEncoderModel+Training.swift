/// What recovery training reads from an encoder: the hidden states entering its first layer
/// (word + position + token-type embeddings and their LayerNorm), which training keeps frozen.
extension BertEncoderModel {
    /// Embedding states of `sequences` (token ids with `[CLS]`/`[SEP]`) packed back to back:
    /// `Σ lengths × hiddenSize`, row-major. Ids and lengths are checked like `embed(tokenSequences:)`.
    public func embeddingStates(_ sequences: [[Int32]]) throws -> [Float] {
        try validate(sequences)
        let (spans, tokens) = Self.spans(of: sequences)
        var x = [Float](repeating: 0, count: tokens * config.hiddenSize)
        x.withUnsafeMutableBufferPointer { embed(sequences, spans: spans, into: $0.baseAddress!, isa: .current) }
        return x
    }

    /// Every sequence holds 1 ... `maxPositions` ids inside the vocabulary (else `InvalidInputError`).
    func validate(_ sequences: [[Int32]]) throws {
        for (i, ids) in sequences.enumerated() {
            guard !ids.isEmpty, ids.count <= config.maxPositions else {
                throw InvalidInputError("sequence \(i) has \(ids.count) tokens; the model takes 1...\(config.maxPositions)")
            }
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw InvalidInputError("sequence \(i) has token id \(bad), outside 0..<\(config.vocabularySize)")
            }
        }
    }
}
