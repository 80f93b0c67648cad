import Foundation

/// One served model (`"endpoints"[i]`).
public struct EndpointConfig: Sendable, Equatable {
    /// Name in URLs: `/v2/models/{name}`.
    public var name: String
    /// Model directory, resolved against the config file's folder.
    public var modelPath: String
    public var version = "1"
    public var compression = CompressionConfig()
    /// A compressed artifact of the model (e.g. a recovered one, `sparse-serve compress --recover`)
    /// served instead, with the compression it was made with, when its folder exists; while it does
    /// not, the endpoint loads `modelPath` compressed as `compression` says (and logs that).
    public var artifactPath: String?
    /// Per-endpoint request body cap; defaults to the server's.
    public var maxBodyBytes: Int?
    /// Text-encoding endpoints: most inputs (texts) per request (413 above).
    public var maxInputs = 2048
    /// Text-encoding endpoints: most tokens per input, at most the model's own limit (422 above,
    /// unless the request asks for truncation); nil = the model's limit.
    public var maxTokensPerInput: Int?
    public var batching = BatchingConfig()
    /// Skip this endpoint (logged, listed as UNAVAILABLE) when its model folder does not exist.
    public var optional = false
    /// Smallest response compressed for this endpoint's inference answers; nil = the server's.
    public var gzipMinimumBytes: Int?
    /// Keys accepted for this endpoint's routes (in addition to the server's); when set, the
    /// endpoint needs a key even if the server has none.
    public var apiKeys: [String] = []
    public init(name: String, modelPath: String) {
        self.name = name
        self.modelPath = modelPath
    }
}

extension EndpointConfig {
    /// What the endpoint loads now: the artifact (no compression block: it keeps its own) when
    /// `artifactPath` exists, else this config.
    public var resolved: EndpointConfig {
        var isDirectory: ObjCBool = false
        guard let artifactPath, FileManager.default.fileExists(atPath: artifactPath, isDirectory: &isDirectory), isDirectory.boolValue else {
            return self
        }
        var e = self
        e.modelPath = artifactPath
        e.compression = CompressionConfig()
        e.artifactPath = nil
        return e
    }
}
