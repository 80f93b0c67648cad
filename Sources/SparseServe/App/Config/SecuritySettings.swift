import Foundation
import HTTPServer
import SparseJSON
import SparseModels

/// The server's security settings beside `ServerConfig`'s: the admin API, the `Host` allowlist,
/// connection fairness and memory ceilings (fields of `"server"` in the config file).
public struct SecuritySettings: Sendable, Equatable {
    public var admin = AdminSettings()
    /// `Host` names (without port) the server answers; nil = the default for the bind address
    /// (`localhost`, `127.0.0.1` and `::1` on a loopback bind, any name otherwise); `["*"]` = any.
    public var allowedHosts: [String]?
    /// Open connections per client address; nil = a quarter of `maxConnections`.
    public var maxConnectionsPerClient: Int?
    /// A connection that sends no request for this long is closed.
    public var firstRequestTimeoutSeconds = 5.0
    /// All request bodies held at once (raw, inflated, and the JSON built from them).
    public var maxTotalBodyBytes = 1 << 30
    public init() {}

    static let loopbackBinds: Set<String> = ["127.0.0.1", "::1", "localhost"]
    static let loopbackNames = ["localhost", "127.0.0.1", "::1"]

    /// The allowlist in force for a server bound to `host` (nil = any `Host`).
    func hostAllowlist(bind host: String) -> Set<String>? {
        if let allowedHosts { return allowedHosts.contains("*") ? nil : Set(allowedHosts.map { $0.lowercased() }) }
        return Self.loopbackBinds.contains(host) || host.hasPrefix("127.") ? Set(Self.loopbackNames) : nil
    }

    func perClientLimit(_ server: ServerConfig) -> Int {
        maxConnectionsPerClient ?? max(1, server.maxConnections / 4)
    }
}

/// `"server.admin"`: the repository load/unload API. Off unless `enabled`; then it needs its own
/// keys and loads only from inside `modelRoot`.
public struct AdminSettings: Sendable, Equatable {
    public var enabled = false
    /// Keys for the admin routes only (inference keys do not open them, and these do not open inference).
    public var apiKeys: [String] = []
    /// Folder that load requests' `model` paths resolve inside (after symlinks); required when enabled.
    public var modelRoot: String?
    /// Largest estimated allocation compressing one layer of a model loaded through the API (or at start).
    public var maxCompressionBytes = 4 << 30
    /// Longest compression of one model at load, in seconds.
    public var maxCompressionSeconds = 600.0
    public init() {}
}

extension SecuritySettings {
    /// Reads the security fields of `"server"` (and the key files) into `server`.
    static func parse(_ o: inout StrictObject, into server: inout ServerConfig, baseDirectory: String) throws {
        var s = SecuritySettings()
        if let file = try o.string("apiKeysFile") {
            server.apiKeys += try readKeyFile(resolve(file, baseDirectory), field: "server.apiKeysFile")
        }
        if let v = try o.take("allowedHosts") {
            guard let list = v.arrayValue?.compactMap(\.stringValue), !list.isEmpty, list.count == v.arrayValue?.count,
                  list.allSatisfy({ !$0.isEmpty && !$0.contains(":") || $0.hasPrefix("[") || $0 == "::1" }) else {
                throw ConfigError(field: "server.allowedHosts", reason: "must be a non-empty array of host names without ports (or [\"*\"])")
            }
            s.allowedHosts = list.map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
        }
        if let v = try o.integer("maxConnectionsPerClient", in: 1...1_000_000) { s.maxConnectionsPerClient = v }
        if let v = try o.seconds("firstRequestTimeoutSeconds") { s.firstRequestTimeoutSeconds = v }
        if let v = try o.integer("maxTotalBodyBytes", in: 1...(1 << 40)) { s.maxTotalBodyBytes = v }
        if let v = try o.take("admin") { s.admin = try parseAdmin(v, baseDirectory: baseDirectory) }
        server.security = s
    }

    /// Checks that depend on several fields; run once the whole server section is read.
    static func validate(_ server: ServerConfig) throws {
        let s = server.security
        if s.maxTotalBodyBytes < server.maxBodyBytes {
            throw ConfigError(field: "server.maxTotalBodyBytes", reason: "\(s.maxTotalBodyBytes) is below server.maxBodyBytes (\(server.maxBodyBytes)): no request that large could ever be read")
        }
        guard s.admin.enabled else { return }
        if s.admin.apiKeys.isEmpty {
            throw ConfigError(field: "server.admin.apiKeys", reason: "the admin API is enabled but has no key: set admin.apiKeys or admin.apiKeysFile (the server refuses to run load/unload without one)")
        }
        if s.admin.modelRoot == nil {
            throw ConfigError(field: "server.admin.modelRoot", reason: "the admin API is enabled: set the folder load requests may load models from")
        }
    }

    private static func parseAdmin(_ json: JSON, baseDirectory: String) throws -> AdminSettings {
        var o = try StrictObject(json, path: "server.admin")
        var a = AdminSettings()
        if let v = try o.take("enabled") {
            guard let flag = v.boolValue else { throw ConfigError(field: "server.admin.enabled", reason: "must be true or false") }
            a.enabled = flag
        }
        if let v = try o.take("apiKeys") { a.apiKeys = try ServiceConfig.parseKeys(v, field: "server.admin.apiKeys") }
        if let file = try o.string("apiKeysFile") {
            a.apiKeys += try readKeyFile(resolve(file, baseDirectory), field: "server.admin.apiKeysFile")
        }
        if let root = try o.string("modelRoot") {
            let path = resolve(root, baseDirectory)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
                  let real = realPath(path) else {
                throw ConfigError(field: "server.admin.modelRoot", reason: "'\(path)' is not a folder")
            }
            a.modelRoot = real
        }
        if let v = try o.integer("maxCompressionBytes", in: 1 << 20 ... 1 << 40) { a.maxCompressionBytes = v }
        if let v = try o.seconds("maxCompressionSeconds") { a.maxCompressionSeconds = v }
        try o.finish()
        return a
    }

    /// One key per line; blank lines and lines starting with `#` are skipped (a mounted Secret).
    package static func readKeyFile(_ path: String, field: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else {
            throw ConfigError(field: field, reason: "cannot read the key file '\(path)' (one key per line, at most 1 MiB)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !lines.isEmpty else { throw ConfigError(field: field, reason: "the key file '\(path)' holds no key") }
        return try ServiceConfig.parseKeys(.array(lines.map { .string($0) }), field: field)
    }

    static func resolve(_ path: String, _ base: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: base).appendingPathComponent(path).standardized.path
    }

    /// The canonical path (symlinks resolved), or nil when it does not exist.
    package static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

extension AdminSettings {
    /// The real path of a load request's `model` inside `modelRoot` (relative paths resolve
    /// against it). Whatever is wrong — outside the root, through a link leading out, missing —
    /// the error is the same, so a caller learns nothing about the file system.
    func confine(_ model: String, kind: String = "model") throws -> String {
        let refusal = ProtocolError(400, "\(kind) '\(model)' is not available under the model root")
        guard let root = modelRoot, !model.isEmpty, model.utf8.count <= 4096, !model.utf8.contains(0) else { throw refusal }
        let candidate = model.hasPrefix("/") ? model : root + "/" + model
        guard let real = SecuritySettings.realPath(candidate), real.hasPrefix(root == "/" ? "/" : root + "/") else { throw refusal }
        return real
    }

    /// Server-side ceilings for a config posted to the load API (the config file's own ranges
    /// apply first): nothing above what the server itself was started with.
    func checkCeilings(_ e: EndpointConfig, server: ServerConfig) throws {
        func over(_ field: String, _ value: Int, _ limit: Int, _ source: String) -> ProtocolError {
            ProtocolError(400, "parameters.config.\(field): \(value) is above the server's limit of \(limit) (\(source))")
        }
        if let body = e.maxBodyBytes, body > server.maxBodyBytes {
            throw over("maxBodyBytes", body, server.maxBodyBytes, "server.maxBodyBytes")
        }
        if e.batching.maxQueueSize > server.maxQueueSize {
            throw over("batching.maxQueueSize", e.batching.maxQueueSize, server.maxQueueSize, "server.maxQueueSize")
        }
        let inputs = EndpointConfig(name: e.name, modelPath: e.modelPath).maxInputs
        if e.maxInputs > inputs { throw over("maxInputs", e.maxInputs, inputs, "the default") }
        if e.batching.maxBatchSize > 4096 { throw over("batching.maxBatchSize", e.batching.maxBatchSize, 4096, "API loads") }
    }

    /// The compression limits loads run under.
    var compressionLimits: CompressionLimits {
        CompressionLimits(maxLayerBytes: maxCompressionBytes, maxSeconds: maxCompressionSeconds)
    }
}
