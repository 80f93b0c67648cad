import SparseJSON

/// `"compat"`: other servers' APIs SparseServe speaks beside its own.
public struct CompatConfig: Sendable, Equatable {
    public var tei = TEIConfig()
    public init() {}

    /// Reads `"compat"`; `endpoints` are the configured endpoint names (`tei.model` must be one).
    static func parse(_ json: JSON, endpoints: [String]) throws -> CompatConfig {
        var o = try StrictObject(json, path: "compat")
        var compat = CompatConfig()
        if let v = try o.take("tei") {
            var t = try StrictObject(v, path: "compat.tei")
            if let model = try t.string("model") {
                guard endpoints.contains(model) else {
                    throw ConfigError(field: "compat.tei.model", reason: "'\(model)' is not an endpoint of this config (\(endpoints.joined(separator: ", ")))")
                }
                compat.tei.model = model
            }
            if let e = try t.take("enabled") {
                guard let flag = e.boolValue else { throw ConfigError(field: "compat.tei.enabled", reason: "must be true or false") }
                compat.tei.enabled = flag
            }
            try t.finish()
        }
        try o.finish()
        return compat
    }
}

/// `"compat.tei"`: the text-embeddings-inference API (`POST /embed`, `/`, `/embed_all`,
/// `/similarity`, `/tokenize`, `/decode`, `GET /info`, `/health`) for one text-encoding endpoint.
public struct TEIConfig: Sendable, Equatable {
    /// The endpoint the routes serve; nil = the only loaded text encoder, when there is exactly one.
    public var model: String?
    /// false = no TEI routes (404), whatever is loaded.
    public var enabled = true
    public init() {}
}
