import Foundation
import SparseJSON
import SparseModels

/// The whole configuration file: `{"server": {...}, "endpoints": [...]}`.
public struct ServiceConfig: Sendable, Equatable {
    public var server = ServerConfig()
    public var endpoints: [EndpointConfig] = []
    /// Other servers' APIs spoken beside our own (`"compat"`).
    public var compat = CompatConfig()
    /// Span export (`"tracing"`); off unless an endpoint is set here, by flag or by environment.
    public var tracing = TracingConfig()
    /// Folder that relative paths resolve against (the config file's folder).
    public var baseDirectory = FileManager.default.currentDirectoryPath
    public init() {}

    /// Reads and validates a config file; relative model paths resolve against the file's folder.
    public static func load(path: String) throws -> ServiceConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(field: "", reason: "cannot read config file '\(path)'")
        }
        let base = (URL(fileURLWithPath: path).deletingLastPathComponent()).path
        return try parse(Array(data), baseDirectory: base)
    }

    /// Parses and validates config JSON. Unknown keys and impossible values are errors naming the field.
    public static func parse(_ bytes: [UInt8], baseDirectory: String) throws -> ServiceConfig {
        let json: JSON
        do { json = try JSON.parse(bytes) } catch {
            throw ConfigError(field: "", reason: "\(error)")
        }
        var root = try StrictObject(json, path: "")
        var config = ServiceConfig()
        config.baseDirectory = baseDirectory
        if let server = try root.take("server") {
            config.server = try parseServer(server, baseDirectory: baseDirectory)
        }
        if let tracing = try root.take("tracing") { config.tracing = try TracingConfig.parse(tracing) }
        guard let endpoints = try root.take("endpoints") else {
            throw ConfigError(field: "endpoints", reason: "is required (a non-empty array of endpoints)")
        }
        guard let list = endpoints.arrayValue, !list.isEmpty else {
            throw ConfigError(field: "endpoints", reason: "must be a non-empty array, got \(endpoints.kindName)")
        }
        let compat = try root.take("compat")
        try root.finish()
        var names = Set<String>()
        for (i, item) in list.enumerated() {
            let endpoint = try parseEndpoint(item, path: "endpoints[\(i)]", baseDirectory: baseDirectory)
            guard names.insert(endpoint.name).inserted else {
                throw ConfigError(field: "endpoints[\(i)].name", reason: "duplicate endpoint name '\(endpoint.name)'")
            }
            config.endpoints.append(endpoint)
        }
        if let compat { config.compat = try CompatConfig.parse(compat, endpoints: config.endpoints.map(\.name)) }
        return config
    }

    static func resolve(_ path: String, _ base: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: base).appendingPathComponent(path).standardized.path
    }

    private static func parseServer(_ json: JSON, baseDirectory: String) throws -> ServerConfig {
        var o = try StrictObject(json, path: "server")
        var s = ServerConfig()
        if let v = try o.string("host") {
            guard !v.isEmpty else { throw ConfigError(field: "server.host", reason: "must not be empty") }
            s.host = v
        }
        if let v = try o.integer("port", in: 0...65535) { s.port = v }
        if let v = try o.integer("threads", in: 1...256) { s.threads = v }
        if let v = try o.integer("ioThreads", in: 1...64) { s.ioThreads = v }
        if let v = try o.integer("kernelThreads", in: 1...256) { s.kernelThreads = v }
        if let v = try o.integer("maxBodyBytes", in: 1...(1 << 34)) { s.maxBodyBytes = v }
        if let v = try o.integer("maxConnections", in: 1...1_000_000) { s.maxConnections = v }
        if let v = try o.integer("maxQueueSize", in: 1...1_000_000) { s.maxQueueSize = v }
        if let v = try o.seconds("headerReadTimeoutSeconds") { s.headerReadTimeoutSeconds = v }
        if let v = try o.seconds("bodyReadTimeoutSeconds") { s.bodyReadTimeoutSeconds = v }
        if let v = try o.seconds("idleTimeoutSeconds") { s.idleTimeoutSeconds = v }
        if let v = try o.seconds("gracePeriodSeconds", allowZero: true) { s.gracePeriodSeconds = v }
        if let v = try o.take("exitOnModelLoadError") {
            guard let flag = v.boolValue else { throw ConfigError(field: "server.exitOnModelLoadError", reason: "must be true or false") }
            s.exitOnModelLoadError = flag
        }
        if let v = try o.take("apiKeys") { s.apiKeys = try parseKeys(v, field: "server.apiKeys") }
        if let v = try o.take("publicRoutes") {
            let known = RouteGroup.exemptible
            let list = v.arrayValue?.compactMap { $0.stringValue.flatMap(RouteGroup.init(rawValue:)) }
            guard let list, list.count == v.arrayValue?.count, list.allSatisfy(known.contains) else {
                throw ConfigError(field: "server.publicRoutes", reason: "must be an array of: \(known.map(\.rawValue).sorted().joined(separator: ", "))")
            }
            s.publicRoutes = Set(list)
        }
        if let v = try o.take("tls") {
            var to = try StrictObject(v, path: "server.tls")
            guard let cert = try to.string("certificate"), let key = try to.string("privateKey") else {
                throw ConfigError(field: "server.tls", reason: "needs both 'certificate' and 'privateKey' (PEM file paths)")
            }
            var tls = TLSSettings(certificate: resolve(cert, baseDirectory), privateKey: resolve(key, baseDirectory))
            if let ca = try to.string("clientCA") { tls.clientCA = resolve(ca, baseDirectory) }
            if let p = try to.integer("port", in: 0...65535) { tls.port = p }
            try to.finish()
            s.tls = tls
        }
        if let v = try o.take("gzip") {
            var go = try StrictObject(v, path: "server.gzip")
            if let m = try go.integer("minimumBytes", in: 0...(1 << 30)) { s.gzipMinimumBytes = m }
            if let e = try go.take("enabled") {
                guard let flag = e.boolValue else { throw ConfigError(field: "server.gzip.enabled", reason: "must be true or false") }
                s.gzipEnabled = flag
            }
            try go.finish()
        }
        try SecuritySettings.parse(&o, into: &s, baseDirectory: baseDirectory)
        if let v = try o.take("cors") {
            var co = try StrictObject(v, path: "server.cors")
            var cors = CORSConfig()
            if let origins = try co.take("allowOrigins") {
                guard let list = origins.arrayValue?.compactMap(\.stringValue), !list.isEmpty,
                      list.count == origins.arrayValue?.count else {
                    throw ConfigError(field: "server.cors.allowOrigins", reason: "must be a non-empty array of origins (or [\"*\"])")
                }
                cors.allowOrigins = list
            }
            if let age = try co.integer("maxAgeSeconds", in: 0...86_400) { cors.maxAgeSeconds = age }
            try co.finish()
            s.cors = cors
        }
        try o.finish()
        try SecuritySettings.validate(s)
        return s
    }

    static func parseEndpoint(_ json: JSON, path: String, baseDirectory: String) throws -> EndpointConfig {
        var o = try StrictObject(json, path: path)
        guard let name = try o.string("name") else {
            throw ConfigError(field: "\(path).name", reason: "is required")
        }
        guard isValidName(name) else {
            throw ConfigError(field: "\(path).name", reason: "'\(name)' must be 1-128 characters of letters, digits, '-', '_' or '.'")
        }
        guard let model = try o.string("model"), !model.isEmpty else {
            throw ConfigError(field: "\(path).model", reason: "is required (a model directory)")
        }
        var e = EndpointConfig(name: name, modelPath: resolve(model, baseDirectory))
        if let v = try o.string("version") {
            guard isValidName(v) else { throw ConfigError(field: "\(path).version", reason: "'\(v)' is not a valid version name") }
            e.version = v
        }
        if let a = try o.string("artifact") {
            guard !a.isEmpty else { throw ConfigError(field: "\(path).artifact", reason: "must be a compressed artifact's folder") }
            e.artifactPath = resolve(a, baseDirectory)
        }
        if let v = try o.integer("maxBodyBytes", in: 1...(1 << 34)) { e.maxBodyBytes = v }
        if let v = try o.integer("maxInputs", in: 1...1_000_000) { e.maxInputs = v }
        if let v = try o.integer("maxTokensPerInput", in: 2...1_000_000) { e.maxTokensPerInput = v }
        if let v = try o.take("optional") {
            guard let flag = v.boolValue else { throw ConfigError(field: "\(path).optional", reason: "must be true or false") }
            e.optional = flag
        }
        if let v = try o.take("apiKeys") { e.apiKeys = try parseKeys(v, field: "\(path).apiKeys") }
        if let v = try o.take("gzip") {
            var go = try StrictObject(v, path: "\(path).gzip")
            if let m = try go.integer("minimumBytes", in: 0...(1 << 30)) { e.gzipMinimumBytes = m }
            try go.finish()
        }
        if let b = try o.take("batching") {
            e.batching = try parseBatching(b, path: "\(path).batching")
        }
        if let c = try o.take("compression") {
            guard c.objectValue != nil else {
                throw ConfigError(field: "\(path).compression", reason: "must be an object, got \(c.kindName)")
            }
            // "layers" (per-layer overrides), "activations" and the calibration keys sit beside the method's own keys.
            var top = c.objectValue ?? []
            let layers = top.first { $0.0 == "layers" }?.1
            let activations = top.first { $0.0 == "activations" }?.1
            e.compression.calibration = try CompressionConfig.parseCalibration(top.filter { CompressionConfig.calibrationKeys.contains($0.0) },
                                                                               path: "\(path).compression", baseDirectory: baseDirectory)
            top.removeAll { $0.0 == "layers" || $0.0 == "activations" || CompressionConfig.calibrationKeys.contains($0.0) }
            let (method, base) = try CompressionConfig.parseMethod(.object(top), path: "\(path).compression")
            var plan = CompressionPlan(method: base)
            if let activations {
                plan.activations = try CompressionConfig.parseActivations(activations, path: "\(path).compression.activations")
            }
            if let layers {
                guard let pairs = layers.objectValue else {
                    throw ConfigError(field: "\(path).compression.layers", reason: "must be an object of layer-name patterns")
                }
                for (pattern, value) in pairs {
                    let (_, m) = try CompressionConfig.parseMethod(value, path: "\(path).compression.layers.\(pattern)")
                    plan.overrides.append((pattern, m))
                }
            }
            e.compression.method = method
            e.compression.plan = plan
            e.compression.isSpecified = true
        }
        try o.finish()
        return e
    }

    private static func parseBatching(_ json: JSON, path: String) throws -> BatchingConfig {
        var o = try StrictObject(json, path: path)
        var b = BatchingConfig()
        if let v = try o.integer("maxBatchSize", in: 1...65536) { b.maxBatchSize = v }
        if let v = try o.integer("maxBatchTokens", in: 1...(1 << 24)) { b.maxBatchTokens = v }
        if let v = try o.integer("maxQueueDelayMicroseconds", in: 0...10_000_000) { b.maxQueueDelayMicroseconds = v }
        if let v = try o.integer("maxQueueSize", in: 1...1_000_000) { b.maxQueueSize = v }
        if let v = try o.integer("rejectStatus", in: 429...503) {
            guard v == 429 || v == 503 else { throw ConfigError(field: "\(path).rejectStatus", reason: "must be 429 or 503") }
            b.rejectStatus = v
        }
        if let v = try o.take("dispatchWhenIdle") {
            guard let flag = v.boolValue else { throw ConfigError(field: "\(path).dispatchWhenIdle", reason: "must be true or false") }
            b.dispatchWhenIdle = flag
        }
        if let v = try o.take("preferredBatchSizes") {
            guard let list = v.arrayValue else { throw ConfigError(field: "\(path).preferredBatchSizes", reason: "must be an array of integers") }
            b.preferredBatchSizes = try list.map { item in
                guard let i = item.integerValue, i >= 1, i <= Int64(b.maxBatchSize) else {
                    throw ConfigError(field: "\(path).preferredBatchSizes", reason: "entries must be integers in 1...maxBatchSize (\(b.maxBatchSize))")
                }
                return Int(i)
            }.sorted()
        }
        try o.finish()
        return b
    }

    /// API keys: a non-empty array of strings of at least 16 visible ASCII characters.
    static func parseKeys(_ v: JSON, field: String) throws -> [String] {
        guard let list = v.arrayValue, !list.isEmpty else {
            throw ConfigError(field: field, reason: "must be a non-empty array of strings")
        }
        return try list.map { item in
            guard let k = item.stringValue, k.utf8.count >= 16, k.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ConfigError(field: field, reason: "each key must be a string of at least 16 visible ASCII characters")
            }
            return k
        }
    }

    static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128 && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
        }
    }
}
