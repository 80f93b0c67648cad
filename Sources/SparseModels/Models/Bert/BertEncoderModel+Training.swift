/// What recovery training reads from an encoder: the hidden states entering its first layer
/// (word + position + token-type embeddings and their LayerNorm), which training keeps frozen;
/// and a copy with trained encoder LayerNorms, to measure them.
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

    /// This encoder with the encoder layers' LayerNorm gains and biases in `tensors` (by tensor
    /// name, e.g. `encoder.layer.0.output.LayerNorm.weight`, each `hiddenSize` long) in place of its own.
    package func replacingNorms(_ tensors: [String: [Float]]) throws -> BertEncoderModel {
        var layers = self.layers, used = 0
        func values(_ name: String, _ current: [Float]) throws -> [Float] {
            guard let values = tensors[name] else { return current }
            guard values.count == config.hiddenSize else {
                throw InvalidInputError("\(name): \(values.count) values for a hidden size of \(config.hiddenSize)")
            }
            used += 1
            return values
        }
        func norm(_ name: String, _ current: Norm) throws -> Norm {
            (gamma: try values(name + ".weight", current.gamma), beta: try values(name + ".bias", current.beta))
        }
        for i in layers.indices {
            layers[i].attentionNorm = try norm("encoder.layer.\(i).attention.output.LayerNorm", layers[i].attentionNorm)
            layers[i].outputNorm = try norm("encoder.layer.\(i).output.LayerNorm", layers[i].outputNorm)
        }
        guard used == tensors.count else { throw InvalidInputError("replacingNorms: \(tensors.count - used) tensors name no encoder LayerNorm") }
        return BertEncoderModel(config: config, options: options, tokenizer: tokenizer, embeddings: embeddings, layers: layers,
                                tables: geluTable.flatMap { gelu in expTable.map { (gelu, $0) } }, inputs: inputs, outputs: outputs,
                                summary: summary, pool: pool)
    }
}
