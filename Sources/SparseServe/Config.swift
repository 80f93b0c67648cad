import Foundation
import SparseModels
import SparseJSON

/// A configuration problem, naming the offending field (e.g. `endpoints[1].compression.method`) and why.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var field: String
    public var reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { field.isEmpty ? "config: \(reason)" : "config: \(field): \(reason)" }
}

/// Server-wide settings (`"server"` in the config file).
public struct ServerConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// Compute threads that run inference (never the I/O threads).
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    public var ioThreads = 2
    /// Threads one kernel call may be split across (intra-op; default: the CPU count). Splitting
    /// cuts single-request latency; under heavy concurrency `1` avoids oversubscribing the cores.
    public var kernelThreads: Int?
    public var maxBodyBytes = 64 << 20
    public var maxConnections = 1024
    /// Requests waiting for a compute thread before new ones get 503.
    public var maxQueueSize = 1024
    public var headerReadTimeoutSeconds = 10.0
    public var bodyReadTimeoutSeconds = 60.0
    public var idleTimeoutSeconds = 60.0
    /// true: a model that fails to load at start-up stops the process (exit 1). false: the
    /// other endpoints serve, the failed one is UNAVAILABLE with its reason (index, logs, metrics).
    public var exitOnModelLoadError = true
    /// How long a SIGTERM/SIGINT waits for in-flight requests before closing everything.
    public var gracePeriodSeconds = 30.0
    /// When non-empty, every route except the public ones needs `Authorization: Bearer <key>`.
    public var apiKeys: [String] = []
    /// Route groups reachable without a key even when keys are configured:
    /// any of `health`, `metrics`, `metadata`, `openapi`.
    public var publicRoutes: Set<String> = ["health", "metrics", "openapi"]
    /// Cross-origin access for browser clients; nil = no CORS headers.
    public var cors: CORSConfig?
    /// HTTPS listener settings; nil = plaintext only.
    public var tls: TLSSettings?
    /// Responses at least this large are compressed when the client accepts gzip/deflate
    /// (per endpoint: `endpoints[i].gzip.minimumBytes`).
    public var gzipMinimumBytes = 1024
    /// false = never compress responses (requests with Content-Encoding are still decoded).
    public var gzipEnabled = true
    public init() {}
}

/// `"server.tls"`: certificate and key (PEM paths, resolved against the config file's folder),
/// optional client CA for mutual TLS, and an optional separate port so plaintext and TLS
/// listeners can run side by side (without `port`, the main port speaks TLS).
public struct TLSSettings: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String
    public var clientCA: String?
    public var port: Int?
}

/// CORS settings (`"server.cors"`): which origins may call the API from a browser.
public struct CORSConfig: Sendable, Equatable {
    /// Allowed origins, or ["*"] for any.
    public var allowOrigins: [String] = ["*"]
    public var maxAgeSeconds = 600
    public init() {}
}

/// How an endpoint's linear layers are stored and run (`"compression"`): `dense`, magnitude
/// `nm` (n, m) or `csr` (density), with per-layer overrides by name pattern (`"layers"`).
public struct CompressionConfig: Sendable, Equatable {
    /// The endpoint-wide method name ("dense", "nm", "csr").
    public var method = "dense"
    public var plan = CompressionPlan.dense
    /// Whether the endpoint config has a `"compression"` block (an artifact model must not).
    public var isSpecified = false
    public init() {}

    /// Parses a `"compression"` object on its own (the `inspect` command's `--compression`).
    public static func parse(_ text: String) throws -> CompressionConfig {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw ConfigError(field: "compression", reason: "\(error)") }
        let wrapped = JSON.object([("name", .string("inspect")), ("model", .string("/")), ("compression", json)])
        do {
            return try ServiceConfig.parseEndpoint(wrapped, path: "", baseDirectory: "/").compression
        } catch var error as ConfigError {
            if error.field.hasPrefix(".") { error.field.removeFirst() }
            throw error
        }
    }

    /// Methods the compression issue adds later; refused with a clear message until then.
    static let planned: [String] = []

    /// `{"method": "exact"}` or `{"method": "pwl", "segments": 2...256}` (default 64 segments).
    static func parseActivations(_ json: JSON, path: String) throws -> ActivationApproximation {
        var o = try StrictObject(json, path: path)
        let result: ActivationApproximation
        switch try o.string("method") ?? "exact" {
        case "exact": result = .exact
        case "pwl": result = .pwl(segments: try o.integer("segments", in: 2...256) ?? 64)
        case let other: throw ConfigError(field: "\(path).method", reason: "'\(other)' is not an activation method (exact, pwl)")
        }
        try o.finish()
        return result
    }

    static func parseMethod(_ json: JSON, path: String) throws -> (String, LayerCompression) {
        var o = try StrictObject(json, path: path)
        guard let method = try o.string("method") else { throw ConfigError(field: "\(path).method", reason: "is required") }
        var result: LayerCompression
        switch method {
        case "dense":
            result = .dense
        case "nm":
            guard let n = try o.integer("n", in: 1...15), let m = try o.integer("m", in: 4...16) else {
                throw ConfigError(field: path, reason: "method 'nm' needs integers 'n' and 'm'")
            }
            guard [4, 8, 16].contains(m), n < m else {
                throw ConfigError(field: "\(path).m", reason: "\(n):\(m) is not supported: m must be 4, 8 or 16 and n < m")
            }
            switch try o.string("mask") ?? "magnitude" {
            case "magnitude": result = .nm(n: n, m: m)
            case "transposable": result = .transposableNM(n: n, m: m)
            case let other: throw ConfigError(field: "\(path).mask", reason: "'\(other)' is not a mask kind (magnitude, transposable)")
            }
        case "csr":
            guard let d = try o.take("density"), let density = d.doubleValue, density > 0, density <= 1 else {
                throw ConfigError(field: "\(path).density", reason: "method 'csr' needs a 'density' in (0, 1]")
            }
            result = .csr(density: density)
        case "blast":
            guard let b = try o.integer("blocks", in: 1...64) else {
                throw ConfigError(field: "\(path).blocks", reason: "method 'blast' needs 'blocks' (1...64)")
            }
            let rank = try o.integer("rank", in: 1...65536)
            var ratio: Double?
            if let v = try o.take("parameterRatio") {
                guard let d = v.doubleValue, d > 0, d < 1 else {
                    throw ConfigError(field: "\(path).parameterRatio", reason: "must be a number in (0, 1)")
                }
                ratio = d
            }
            guard (rank == nil) != (ratio == nil) else {
                throw ConfigError(field: path, reason: "method 'blast' needs exactly one of 'rank' and 'parameterRatio'")
            }
            let iterations = try o.integer("iterations", in: 1...10_000) ?? 100
            result = .blast(blocks: b, rank: rank, parameterRatio: ratio, iterations: iterations)
        case "l1inf":
            let groups = try o.string("groups") ?? "columns"
            guard let g = L1InfGroups(rawValue: groups) else {
                throw ConfigError(field: "\(path).groups", reason: "'\(groups)' must be 'columns' or 'rows'")
            }
            var radius: Double?, ratio: Double?
            if let v = try o.take("radius") {
                guard let d = v.doubleValue, d >= 0, d.isFinite else { throw ConfigError(field: "\(path).radius", reason: "must be a number ≥ 0") }
                radius = d
            }
            if let v = try o.take("radiusRatio") {
                guard let d = v.doubleValue, d > 0, d <= 1 else { throw ConfigError(field: "\(path).radiusRatio", reason: "must be a number in (0, 1]") }
                ratio = d
            }
            guard (radius == nil) != (ratio == nil) else {
                throw ConfigError(field: path, reason: "method 'l1inf' needs exactly one of 'radius' and 'radiusRatio'")
            }
            result = .l1inf(groups: g, radius: radius, radiusRatio: ratio)
        case let other where planned.contains(other):
            throw ConfigError(field: "\(path).method", reason: "'\(other)' is not implemented yet (supported: dense, nm, csr, blast, l1inf)")
        default:
            throw ConfigError(field: "\(path).method", reason: "'\(method)' is not a supported method (supported: dense, nm, csr, blast, l1inf)")
        }
        if let pin = try o.take("pin") {
            guard let flag = pin.boolValue else { throw ConfigError(field: "\(path).pin", reason: "must be true or false") }
            if flag, result != .dense { result = .pinned(result) }
        }
        try o.finish()
        return (method, result)
    }
}

/// One served model (`"endpoints"[i]`).
public struct EndpointConfig: Sendable, Equatable {
    /// Name in URLs: `/v2/models/{name}`.
    public var name: String
    /// Model directory, resolved against the config file's folder.
    public var modelPath: String
    public var version = "1"
    public var compression = CompressionConfig()
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

/// The whole configuration file: `{"server": {...}, "endpoints": [...]}`.
public struct ServiceConfig: Sendable, Equatable {
    public var server = ServerConfig()
    public var endpoints: [EndpointConfig] = []
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
        guard let endpoints = try root.take("endpoints") else {
            throw ConfigError(field: "endpoints", reason: "is required (a non-empty array of endpoints)")
        }
        guard let list = endpoints.arrayValue, !list.isEmpty else {
            throw ConfigError(field: "endpoints", reason: "must be a non-empty array, got \(endpoints.kindName)")
        }
        try root.finish()
        var names = Set<String>()
        for (i, item) in list.enumerated() {
            let endpoint = try parseEndpoint(item, path: "endpoints[\(i)]", baseDirectory: baseDirectory)
            guard names.insert(endpoint.name).inserted else {
                throw ConfigError(field: "endpoints[\(i)].name", reason: "duplicate endpoint name '\(endpoint.name)'")
            }
            config.endpoints.append(endpoint)
        }
        return config
    }

    private static func resolve(_ path: String, _ base: String) -> String {
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
            let known: Set<String> = ["health", "metrics", "metadata", "openapi"]
            guard let list = v.arrayValue?.compactMap(\.stringValue), list.count == v.arrayValue?.count,
                  list.allSatisfy(known.contains) else {
                throw ConfigError(field: "server.publicRoutes", reason: "must be an array of: \(known.sorted().joined(separator: ", "))")
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
            // "layers" (per-layer overrides) and "activations" sit beside the method's own keys.
            var top = c.objectValue ?? []
            let layers = top.first { $0.0 == "layers" }?.1
            let activations = top.first { $0.0 == "activations" }?.1
            top.removeAll { $0.0 == "layers" || $0.0 == "activations" }
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
    private static func parseKeys(_ v: JSON, field: String) throws -> [String] {
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

    private static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128 && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
        }
    }
}

/// Reads an object's keys one by one and reports any key left unread as unknown.
struct StrictObject {
    private var pairs: [(String, JSON)]
    private var used = Set<String>()
    let path: String

    init(_ json: JSON, path: String) throws {
        guard let pairs = json.objectValue else {
            throw ConfigError(field: path, reason: "must be an object, got \(json.kindName)")
        }
        self.pairs = pairs
        self.path = path
    }

    private func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func take(_ key: String) throws -> JSON? {
        used.insert(key)
        return pairs.first(where: { $0.0 == key })?.1
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = try take(key) else { return nil }
        guard let s = v.stringValue else { throw ConfigError(field: field(key), reason: "must be a string, got \(v.kindName)") }
        return s
    }

    mutating func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = try take(key) else { return nil }
        guard let i = v.integerValue else { throw ConfigError(field: field(key), reason: "must be an integer, got \(v.kindName)") }
        guard i >= Int64(range.lowerBound), i <= Int64(range.upperBound) else {
            throw ConfigError(field: field(key), reason: "\(i) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(i)
    }

    mutating func seconds(_ key: String, allowZero: Bool = false) throws -> Double? {
        guard let v = try take(key) else { return nil }
        guard let d = v.doubleValue, d.isFinite else { throw ConfigError(field: field(key), reason: "must be a number of seconds, got \(v.kindName)") }
        guard d > 0 || (allowZero && d == 0), d <= 86_400 else {
            throw ConfigError(field: field(key), reason: "\(d) must be \(allowZero ? "≥ 0" : "> 0") and at most 86400 seconds")
        }
        return d
    }

    func finish() throws {
        for (k, _) in pairs where !used.contains(k) {
            let known = used.sorted().joined(separator: ", ")
            throw ConfigError(field: field(k), reason: "unknown key (known keys here: \(known))")
        }
    }
}
