/// The shape of a BERT encoder, from Hugging Face's `config.json` (read by `BertEncoderFiles`).
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

    public init(hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, layerNormEpsilon: Float, maxPositions: Int,
                vocabularySize: Int, typeVocabularySize: Int) {
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.layerNormEpsilon = layerNormEpsilon
        self.maxPositions = maxPositions
        self.vocabularySize = vocabularySize
        self.typeVocabularySize = typeVocabularySize
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
    public struct Block: Sendable, Equatable, Codable {
        public var pooling: Pooling?
        public var normalize: Bool?
        public var maxTokens: Int?
        public var lowercase: Bool?

        enum CodingKeys: String, CodingKey, CaseIterable { case pooling, normalize, maxTokens, lowercase }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            pooling = try c.decodeIfPresent(Pooling.self, forKey: .pooling)
            normalize = try c.decodeIfPresent(Bool.self, forKey: .normalize)
            maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
            lowercase = try c.decodeIfPresent(Bool.self, forKey: .lowercase)
        }
    }

    /// `self` with the keys `block` sets replaced.
    func overridden(by block: Block?) -> BertEncoderOptions {
        guard let block else { return self }
        return BertEncoderOptions(pooling: block.pooling ?? pooling, normalize: block.normalize ?? normalize,
                                  maxTokens: block.maxTokens ?? maxTokens, lowercase: block.lowercase ?? lowercase)
    }
}
