import SparseModels

/// One input of a text-embedding request: UTF-8 text, or token ids of the model's vocabulary.
enum TextInput {
    case text([UInt8])
    case tokens([Int32])
}

/// Server-side tokenization for `TextEncodingModel` endpoints (v2 `infer` on a BYTES text input
/// and `/v1/embeddings`): enforces the endpoint's `maxInputs` (413) and per-input token limit
/// (422, unless the request asks to `truncate`), and hands the model its INT32 token-id input,
/// padded with -1 to the limit so that every request of the endpoint can share a batch.
enum TextInputs {
    /// The endpoint's `maxInputs` (413 above it).
    static func checkCount(_ count: Int, _ config: EndpointConfig) throws {
        guard count <= config.maxInputs else {
            throw ProtocolError(413, "at most \(config.maxInputs) inputs per request for model '\(config.name)', got \(count)")
        }
    }

    /// Most UTF-8 bytes of text per token of the limit that are tokenized: text beyond
    /// `limit × textBytesPerToken` cannot fit (a token covers a few bytes; only words of over 100
    /// characters, which become one [UNK], cover more) and is refused or cut before tokenizing.
    static let textBytesPerToken = 64

    /// `bytes`, or its first `limit × textBytesPerToken` bytes (cut at a character boundary) when
    /// truncation is asked for; longer text without truncation → 422 before any tokenizing.
    static func boundedText(_ bytes: [UInt8], limit: Int, truncate: Bool, name: String, model: String) throws -> [UInt8] {
        let ceiling = limit * textBytesPerToken
        guard bytes.count > ceiling else { return bytes }
        guard truncate else {
            throw ProtocolError(422, "\(name) is \(bytes.count) bytes of text, more than model '\(model)' takes (\(limit) tokens, at most \(ceiling) bytes are read): shorten it, or ask for truncation (\"truncate\": true)")
        }
        var cut = ceiling
        while cut > 0 && bytes[cut] & 0xC0 == 0x80 { cut -= 1 }  // not inside a UTF-8 sequence
        return Array(bytes[..<cut])
    }

    /// The per-input token limit: the endpoint's `maxTokensPerInput`, never above the model's own.
    static func tokenLimit(_ model: any TextEncodingModel, _ config: EndpointConfig) -> Int {
        min(config.maxTokensPerInput ?? model.maxTokens, model.maxTokens)
    }

    /// The token-id tensor for `items` and the number of tokens it holds (usage). `parameter`
    /// names the inputs in errors (e.g. "input" → "input[3]").
    static func tokenIDs(_ items: [TextInput], model: any TextEncodingModel, endpoint config: EndpointConfig,
                         truncate: Bool, parameter: String) throws -> (tensor: Tensor, tokens: Int) {
        try checkCount(items.count, config)
        let limit = tokenLimit(model, config)
        var flat = [Int32](repeating: -1, count: items.count * limit)
        var tokens = 0
        for (i, item) in items.enumerated() {
            let ids: [Int32], full: Int
            do {
                switch item {
                case .text(let bytes):
                    let bounded = try boundedText(bytes, limit: limit, truncate: truncate, name: "\(parameter)[\(i)]", model: config.name)
                    (ids, full) = try model.tokenize(utf8: bounded, limit: limit)
                case .tokens(let given): (ids, full) = try model.prepare(tokenIDs: given, limit: limit)
                }
            } catch let error as InvalidInputError {
                throw ProtocolError(400, "\(parameter)[\(i)]: \(error.description)")
            }
            if full > limit && !truncate {
                throw ProtocolError(422, "\(parameter)[\(i)] has \(full) tokens; model '\(config.name)' takes at most \(limit) per input "
                                    + "([CLS] and [SEP] included): shorten it, or ask for truncation (\"truncate\": true)")
            }
            flat.replaceSubrange((i * limit)..<(i * limit + ids.count), with: ids)
            tokens += ids.count
        }
        return (Tensor(shape: [items.count, limit], storage: .int32(flat)), tokens)
    }
}
