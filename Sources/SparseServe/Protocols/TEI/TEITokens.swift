import Foundation
import HTTPServer
import SparseJSON
import SparseModels

/// TEI's `/tokenize` (ids with their text, special flag and UTF-8 byte offsets) and `/decode`
/// (ids back to text as Hugging Face's WordPiece decoder writes it) for the endpoint's tokenizer.
enum TEITokens {
    static func wordPiece(_ model: any InferenceModel, config: EndpointConfig) throws -> (WordPieceTokenizer, limit: Int) {
        guard let bert = model as? BertEncoderModel else {
            throw ProtocolError(424, "model '\(config.name)' has no tokenizer the server can run")
        }
        return (bert.tokenizer, TextInputs.tokenLimit(bert, config))
    }

    /// `[[{"id", "text", "special", "start", "stop"}, ...], ...]`. Each text is bounded like an
    /// embedding input (413 above it); the answer lists at most `maxInputs × limit` tokens.
    static func tokenize(_ body: TEIRequests.Tokenize, model: any InferenceModel, config: EndpointConfig) throws -> HTTPResponse {
        let (tokenizer, limit) = try wordPiece(model, config: config)
        try TextInputs.checkCount(body.texts.count, config)
        let most = config.maxInputs * limit
        var total = 0
        var w = JSONWriter(reservingCapacity: 256)
        w.raw("[")
        for (i, raw) in body.texts.enumerated() {
            let text = try TextInputs.boundedText(raw, limit: limit, truncate: false, name: "inputs[\(i)]", model: config.name, status: 413)
            let (ids, offsets): ([Int32], [Range<Int>?])
            do { (ids, offsets) = try tokenizer.encodeWithOffsets(utf8: text) } catch let e as InvalidInputError {
                throw ProtocolError(422, "inputs[\(i)]: \(e.description)")
            }
            total += ids.count
            guard total <= most else {
                throw ProtocolError(413, "the texts have more than \(most) tokens (maxInputs × the token limit) to list: send fewer or shorter texts")
            }
            w.raw(i == 0 ? "[" : ",[")
            var first = true
            for (id, range) in zip(ids, offsets) where body.addSpecialTokens || range != nil {
                w.raw(first ? "{\"id\":" : ",{\"id\":")
                first = false
                let special = tokenizer.isSpecial(id)
                w.number(id)
                w.raw(",\"text\":")
                w.string(special || range == nil ? tokenizer.token(for: id) ?? "" : String(decoding: text[range!], as: UTF8.self))
                w.raw(",\"special\":\(special)")
                if let range, !special { w.raw(",\"start\":\(range.lowerBound),\"stop\":\(range.upperBound)}") } else { w.raw(",\"start\":null,\"stop\":null}") }
            }
            w.raw("]")
        }
        w.raw("]")
        return .json(status: 200, w.bytes)
    }

    /// `["text", ...]`: each id list decoded. Ids outside the vocabulary are 422.
    static func decode(_ body: TEIRequests.Decode, model: any InferenceModel, config: EndpointConfig) throws -> HTTPResponse {
        let (tokenizer, limit) = try wordPiece(model, config: config)
        try TextInputs.checkCount(body.ids.count, config)
        let count = body.ids.reduce(0) { $0 + $1.count }
        guard count <= config.maxInputs * limit else {
            throw ProtocolError(413, "\(count) ids to decode; at most \(config.maxInputs * limit) (maxInputs × the token limit)")
        }
        let texts = try body.ids.enumerated().map { i, ids -> JSON in
            let tokens = try ids.enumerated().compactMap { j, id -> String? in
                guard let token = tokenizer.token(for: id) else {
                    throw ProtocolError(422, "ids[\(i)][\(j)]: token id \(id) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
                }
                return body.skipSpecialTokens && tokenizer.isSpecial(id) ? nil : token
            }
            return .string(wordPieceText(tokens))
        }
        return .json(status: 200, JSONWriter.encode(.array(texts)))
    }

    /// Pieces joined as Hugging Face's WordPiece decoder does: `##` pieces glued to the previous
    /// one, others after a space, then the spaces before punctuation and English contractions
    /// removed (`clean_up_tokenization_spaces`).
    static func wordPieceText(_ tokens: [String]) -> String {
        var text = ""
        for (i, token) in tokens.enumerated() {
            if i > 0 && token.hasPrefix("##") { text += String(token.dropFirst(2)) } else { text += (i > 0 ? " " : "") + token }
        }
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                           (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            text = text.replacingOccurrences(of: from, with: to)
        }
        return text
    }
}
