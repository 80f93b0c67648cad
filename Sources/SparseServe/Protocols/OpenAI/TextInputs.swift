import SparseModels

/// One input of a text-embedding request: UTF-8 text, or token ids of the model's vocabulary.
enum TextInput {
    case text([UInt8])
    case tokens([Int32])
}

/// Which end of an input over the token limit is cut when truncation is asked for (TEI's
/// `truncation_direction`); `[CLS]` and `[SEP]` are always kept.
enum TruncationSide: Sendable {
    case right, left
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

    /// `bytes`, or its first (`.left`: last) `limit × textBytesPerToken` bytes, cut at a character
    /// boundary, when truncation is asked for; longer text without truncation → `status` (422)
    /// before any tokenizing.
    static func boundedText(_ bytes: [UInt8], limit: Int, truncate: Bool, side: TruncationSide = .right, name: String, model: String,
                            status: Int = 422) throws -> [UInt8] {
        let ceiling = limit * textBytesPerToken
        guard bytes.count > ceiling else { return bytes }
        guard truncate else {
            throw ProtocolError(status, "\(name) is \(bytes.count) bytes of text, more than model '\(model)' takes (\(limit) tokens, at most \(ceiling) bytes are read): shorten it, or ask for truncation (\"truncate\": true)")
        }
        if side == .left {
            var cut = bytes.count - ceiling
            while cut < bytes.count && bytes[cut] & 0xC0 == 0x80 { cut += 1 }  // not inside a UTF-8 sequence
            return Array(bytes[cut...])
        }
        var cut = ceiling
        while cut > 0 && bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
        return Array(bytes[..<cut])
    }

    /// The per-input token limit: the endpoint's `maxTokensPerInput`, never above the model's own.
    static func tokenLimit(_ model: any TextEncodingModel, _ config: EndpointConfig) -> Int {
        min(config.maxTokensPerInput ?? model.maxTokens, model.maxTokens)
    }

    /// How `tokenIDs` treats inputs over the limit: cut (on `side`) or refused with `status`.
    struct Truncation {
        var enabled = false
        var side = TruncationSide.right
        var status = 422
    }

    /// The token-id tensor for `items` (rows padded with -1 to `width`, default the limit) and the
    /// number of tokens it holds (usage). `parameter` names the inputs in errors ("input[3]").
    static func tokenIDs(_ items: [TextInput], model: any TextEncodingModel, endpoint config: EndpointConfig,
                         truncate: Bool, parameter: String) throws -> (tensor: Tensor, tokens: Int) {
        let cut = try sequences(items, model: model, endpoint: config, truncation: Truncation(enabled: truncate), parameter: parameter)
        return padded(cut, width: tokenLimit(model, config))
    }

    /// Each input's complete token sequence (`[CLS]` … `[SEP]`), within the endpoint's limits.
    static func sequences(_ items: [TextInput], model: any TextEncodingModel, endpoint config: EndpointConfig,
                          truncation: Truncation, parameter: String) throws -> [[Int32]] {
        try checkCount(items.count, config)
        let limit = tokenLimit(model, config)
        return try items.enumerated().map { i, item in
            let name = "\(parameter)[\(i)]"
            var (ids, full): ([Int32], Int)
            do {
                // Left truncation needs the whole sequence to keep its end.
                let cutAt = truncation.side == .left ? nil : limit
                switch item {
                case .text(let bytes):
                    let bounded = try boundedText(bytes, limit: limit, truncate: truncation.enabled, side: truncation.side, name: name,
                                                  model: config.name, status: truncation.status)
                    (ids, full) = try model.tokenize(utf8: bounded, limit: cutAt)
                case .tokens(let given): (ids, full) = try model.prepare(tokenIDs: given, limit: cutAt)
                }
            } catch let error as InvalidInputError {
                throw ProtocolError(400, "\(name): \(error.description)")
            }
            if full > limit && !truncation.enabled {
                throw ProtocolError(truncation.status, "\(name) has \(full) tokens; model '\(config.name)' takes at most \(limit) per input "
                                    + "([CLS] and [SEP] included): shorten it, or ask for truncation (\"truncate\": true)")
            }
            if ids.count > limit { ids = [ids[0]] + ids.suffix(limit - 1) }  // left truncation: [CLS] + the end
            return ids
        }
    }

    /// Sequences as an INT32 `[n, width]` tensor padded with -1, and their token count.
    static func padded(_ sequences: [[Int32]], width: Int) -> (tensor: Tensor, tokens: Int) {
        var flat = [Int32](repeating: -1, count: sequences.count * width)
        var tokens = 0
        for (i, ids) in sequences.enumerated() {
            flat.replaceSubrange((i * width)..<(i * width + ids.count), with: ids)
            tokens += ids.count
        }
        return (Tensor(shape: [sequences.count, width], storage: .int32(flat)), tokens)
    }
}
