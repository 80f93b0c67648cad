import SparseJSON

/// The bodies of the TEI-compatible routes, read before any model work. Wrong JSON types, a
/// missing or empty `inputs` are 422 (TEI's request validation), malformed JSON 400.
enum TEIRequests {
    static let status = 422

    /// `/embed`, `/` and `/embed_all`: `inputs` (a string, a list of strings, token ids or lists
    /// of token ids), `truncate`, `truncation_direction`, `normalize`.
    struct Embed {
        var inputs: [TextInput]
        var truncation: TextInputs.Truncation
        var normalize = true
    }

    /// `/similarity`: `inputs.source_sentence` against each of `inputs.sentences`.
    struct Similarity {
        var source: [UInt8]
        var sentences: [[UInt8]]
        var truncation: TextInputs.Truncation
    }

    /// `/tokenize`: texts and `add_special_tokens`.
    struct Tokenize {
        var texts: [[UInt8]]
        var addSpecialTokens = true
    }

    /// `/decode`: id lists and `skip_special_tokens`.
    struct Decode {
        var ids: [[Int32]]
        var skipSpecialTokens = true
    }

    static func object(_ body: [UInt8]) throws -> JSON {
        let json: JSON
        do { json = try JSON.parse(body) } catch { throw ProtocolError(400, "malformed JSON body: \(error)") }
        guard json.objectValue != nil else { throw ProtocolError(status, "the body must be a JSON object, got \(json.kindName)") }
        return json
    }

    static func bool(_ json: JSON, _ key: String, default value: Bool) throws -> Bool {
        guard let v = json[key], v != .null else { return value }
        guard let b = v.boolValue else { throw ProtocolError(status, "'\(key)' must be true or false, got \(v.kindName)") }
        return b
    }

    /// `truncate` (default false) and `truncation_direction` (`Right`, the default, or `Left`);
    /// inputs over the limit without truncation are TEI's 413.
    static func truncation(_ json: JSON) throws -> TextInputs.Truncation {
        var t = TextInputs.Truncation(enabled: try bool(json, "truncate", default: false), side: .right, status: 413)
        if let d = json["truncation_direction"], d != .null {
            switch d.stringValue?.lowercased() {
            case "right": t.side = .right
            case "left": t.side = .left
            default: throw ProtocolError(status, "'truncation_direction' must be \"Right\" or \"Left\"")
            }
        }
        return t
    }

    /// Refuses `prompt_name`: no served model has sentence-transformers prompts.
    static func refusePrompt(_ json: JSON) throws {
        if let p = json["prompt_name"], p != .null {
            throw ProtocolError(status, "'prompt_name' is not supported: the model has no prompts")
        }
    }

    static func inputs(_ json: JSON) throws -> JSON {
        guard let inputs = json["inputs"] else { throw ProtocolError(status, "'inputs' is required") }
        return inputs
    }

    static func embed(_ body: [UInt8]) throws -> Embed {
        let json = try object(body)
        try refusePrompt(json)
        let items = try OpenAIEmbeddings.inputs(try inputs(json), name: "inputs", status: status)
        return Embed(inputs: items, truncation: try truncation(json), normalize: try bool(json, "normalize", default: true))
    }

    static func similarity(_ body: [UInt8]) throws -> Similarity {
        let json = try object(body)
        let given = try inputs(json)
        guard given.objectValue != nil else { throw ProtocolError(status, "'inputs' must be an object with 'source_sentence' and 'sentences'") }
        guard let source = given["source_sentence"]?.stringValue, !source.isEmpty else {
            throw ProtocolError(status, "'inputs.source_sentence' must be a non-empty string")
        }
        let sentences = try texts(given["sentences"], name: "inputs.sentences", allowSingle: false)
        let parameters = json["parameters"] ?? .null
        guard parameters == .null || parameters.objectValue != nil else { throw ProtocolError(status, "'parameters' must be an object") }
        if parameters != .null { try refusePrompt(parameters) }
        let cut = try parameters == .null ? TextInputs.Truncation(status: 413) : truncation(parameters)
        return Similarity(source: Array(source.utf8), sentences: sentences, truncation: cut)
    }

    static func tokenize(_ body: [UInt8]) throws -> Tokenize {
        let json = try object(body)
        try refusePrompt(json)
        return Tokenize(texts: try texts(json["inputs"], name: "inputs", allowSingle: true),
                        addSpecialTokens: try bool(json, "add_special_tokens", default: true))
    }

    static func decode(_ body: [UInt8]) throws -> Decode {
        let json = try object(body)
        guard let ids = json["ids"]?.arrayValue, !ids.isEmpty else {
            throw ProtocolError(status, "'ids' must be a non-empty list of token ids or of such lists")
        }
        func list(_ items: [JSON], _ name: String) throws -> [Int32] {
            try items.enumerated().map { j, item in
                guard let v = item.integerValue, v >= 0, v <= Int64(Int32.max) else {
                    throw ProtocolError(status, "'\(name)[\(j)]' must be a non-negative integer token id")
                }
                return Int32(v)
            }
        }
        let lists: [[Int32]]
        if ids.allSatisfy({ $0.integerValue != nil }) {
            lists = [try list(ids, "ids")]
        } else {
            lists = try ids.enumerated().map { i, item in
                guard let inner = item.arrayValue else { throw ProtocolError(status, "'ids[\(i)]' must be a list of token ids") }
                return try list(inner, "ids[\(i)]")
            }
        }
        return Decode(ids: lists, skipSpecialTokens: try bool(json, "skip_special_tokens", default: true))
    }

    /// A string or a non-empty list of strings (`allowSingle`: a lone string is one text).
    static func texts(_ json: JSON?, name: String, allowSingle: Bool) throws -> [[UInt8]] {
        guard let json else { throw ProtocolError(status, "'\(name)' is required") }
        if allowSingle, let one = json.stringValue {
            guard !one.isEmpty else { throw ProtocolError(status, "'\(name)' must not be an empty string") }
            return [Array(one.utf8)]
        }
        guard let list = json.arrayValue, !list.isEmpty else {
            throw ProtocolError(status, "'\(name)' must be a non-empty list of strings, got \(json.kindName)")
        }
        return try list.enumerated().map { i, item in
            guard let s = item.stringValue, !s.isEmpty else { throw ProtocolError(status, "'\(name)[\(i)]' must be a non-empty string") }
            return Array(s.utf8)
        }
    }
}
