import Foundation

/// The route a request path names, after percent-decoding its segments: every URL the server
/// answers, with the typed facts the middleware needs (method, key scope, group, metric label).
enum Route: Equatable, Sendable {
    case serverMetadata
    case live
    case ready
    case modelMetadata(model: String, version: String?)
    case modelReady(model: String, version: String?)
    case infer(model: String, version: String?)
    case modelStatistics(model: String?, version: String?)
    case modelConfig(model: String, version: String?)
    case metrics
    case openAPI
    case embeddings
    /// `GET /v1/models`: the endpoints `/v1/embeddings` serves, as OpenAI's list object.
    case models
    /// `GET /v1/models/{id}`.
    case model(id: String)
    /// A route of the TEI-compatible API (`compat.tei`), served by endpoint `model`.
    case tei(TEIOperation, model: String)
    case repositoryIndex
    case repositoryLoad(model: String)
    case repositoryUnload(model: String)

    /// Which API keys a route needs. The switch has no default, so a new route must choose; a
    /// route that names an endpoint in its path checks that endpoint's keys (unit-tested).
    var keyScope: KeyScope {
        switch self {
        case .serverMetadata, .live, .ready, .metrics, .openAPI, .repositoryIndex:
            return .server
        case .modelMetadata(let model, _), .modelReady(let model, _), .infer(let model, _), .modelConfig(let model, _),
             .model(let model), .tei(_, let model):
            return .endpoint(model)
        case .modelStatistics(let model, _):
            return model.map(KeyScope.endpoint) ?? .server
        case .repositoryLoad, .repositoryUnload:
            // Loading and unloading change what the server serves: admin keys only (RequestGate).
            return .admin
        case .embeddings, .models:
            return .namedInBody
        }
    }

    /// The group `server.publicRoutes` names to exempt a route from API keys.
    var group: RouteGroup {
        switch self {
        case .tei(.health, _): return .health
        case .tei(.info, _): return .metadata
        case .live, .ready: return .health
        case .metrics: return .metrics
        case .openAPI: return .openapi
        // A model's readiness names the model: metadata, not health (probes use /v2/health/ready).
        case .serverMetadata, .modelMetadata, .modelConfig, .modelReady, .models, .model: return .metadata
        case .infer, .modelStatistics, .embeddings, .repositoryIndex, .repositoryLoad, .repositoryUnload, .tei: return .protected
        }
    }

    /// Low-cardinality label of `sparseserve_http_requests_total`.
    var label: RouteLabel {
        switch self {
        case .tei(.health, _): return .health
        case .tei(.info, _): return .metadata
        case .tei: return .tei
        case .serverMetadata, .modelMetadata, .modelConfig, .models, .model: return .metadata
        case .live, .ready, .modelReady: return .health
        case .infer: return .infer
        case .modelStatistics: return .statistics
        case .metrics: return .metrics
        case .openAPI: return .openapi
        case .embeddings: return .embeddings
        case .repositoryIndex, .repositoryLoad, .repositoryUnload: return .repository
        }
    }

    /// The shape of this route's error bodies.
    var errorShape: ErrorShape {
        switch self {
        case .embeddings, .models, .model: return .openAI
        case .tei: return .tei
        default: return .plain
        }
    }

    var allowedMethods: [String] {
        switch self {
        case .infer, .repositoryIndex, .repositoryLoad, .repositoryUnload, .embeddings: return ["POST"]
        case .tei(let operation, _): return operation.takesBody ? ["POST"] : ["GET", "HEAD"]
        default: return ["GET", "HEAD"]
        }
    }

    /// The route of `path`, nil when none matches; a malformed percent-encoding is a 400.
    /// `teiModel` names the endpoint the TEI-compatible routes serve (nil: they do not exist);
    /// it is asked only for paths that could be TEI routes.
    init?(path: String, teiModel: () -> String? = { nil }) throws {
        guard path.hasPrefix("/") else { return nil }
        let segments = try Self.segments(of: path)
        if segments.count == 1, let operation = TEIOperation(rawValue: segments[0]) {
            guard let model = teiModel() else { return nil }
            self = .tei(operation, model: model)
            return
        }
        // (Segments are compared one by one: matching against array literals built an array per case.)
        let s = segments
        if s.count == 1 && s[0] == "metrics" {
            self = .metrics
        } else if s.count == 1 && s[0] == "openapi.yaml" {
            self = .openAPI
        } else if s.count == 2 && s[0] == "v1" && s[1] == "embeddings" {
            self = .embeddings
        } else if s.count == 2 && s[0] == "v1" && s[1] == "models" {
            self = .models
        } else if s.count == 3 && s[0] == "v1" && s[1] == "models" && !s[2].isEmpty {
            self = .model(id: s[2])
        } else {
            guard s.first == "v2", let route = Self.v2(s.dropFirst()) else { return nil }
            self = route
        }
    }

    /// Path segments, percent-decoded, without the empty one a trailing slash leaves.
    private static func segments(of path: String) throws -> [String] {
        var path = path
        // Split on the UTF-8 bytes: `split` on Characters walks grapheme clusters (~12 000
        // instructions for a 5-segment path, twice per request: the head gate and the router).
        var raw: [String] = path.withUTF8 { b in
            var out: [String] = [], start = 1  // (after the leading "/")
            out.reserveCapacity(6)
            for i in 1...b.count where i == b.count || b[i] == UInt8(ascii: "/") {
                out.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
                start = i + 1
            }
            return out
        }
        if raw.count > 1, raw.last == "" { raw.removeLast() }
        return try raw.map { s in
            guard s.utf8.contains(UInt8(ascii: "%")) else { return s }
            guard let decoded = s.removingPercentEncoding else {
                throw ProtocolError(400, "invalid percent-encoding in path segment '\(s)'")
            }
            return decoded
        }
    }

    /// Routes under `/v2/` (`rest`: the segments after `v2`).
    private static func v2(_ rest: ArraySlice<String>) -> Route? {
        guard let first = rest.first else { return .serverMetadata }
        let at = rest.startIndex, second = rest.count > 1 ? rest[at + 1] : ""
        if rest.count == 2 {
            switch (first, second) {
            case ("health", "live"): return .live
            case ("health", "ready"): return .ready
            case ("models", "stats"): return .modelStatistics(model: nil, version: nil)
            case ("repository", "index"): return .repositoryIndex
            default: break
            }
        }
        if rest.count == 4, first == "repository", second == "models", !rest[at + 2].isEmpty {
            switch rest[at + 3] {
            case "load": return .repositoryLoad(model: rest[at + 2])
            case "unload": return .repositoryUnload(model: rest[at + 2])
            default: return nil
            }
        }
        guard rest.count >= 2, first == "models", !second.isEmpty else { return nil }
        let model = second
        var tail = rest.dropFirst(2)
        var version: String?
        if tail.count >= 2, tail.first == "versions" {
            version = tail[tail.startIndex + 1]
            tail = tail.dropFirst(2)
        }
        guard tail.count <= 1 else { return nil }
        switch tail.first {
        case nil: return .modelMetadata(model: model, version: version)
        case "ready": return .modelReady(model: model, version: version)
        case "infer": return .infer(model: model, version: version)
        case "stats": return .modelStatistics(model: model, version: version)
        case "config": return .modelConfig(model: model, version: version)
        default: return nil
        }
    }
}

/// The routes of the TEI-compatible API, by their path segment (`""` is `POST /`).
enum TEIOperation: String, Sendable, CaseIterable {
    case root = "", embed, embedAll = "embed_all", similarity, tokenize, decode, info, health

    /// Whether the operation is a POST with a JSON body (else a GET).
    var takesBody: Bool { self != .info && self != .health }
}

/// How a route's errors are written: `{"error": "..."}`, OpenAI's `{"error": {"message", ...}}`
/// or TEI's `{"error", "error_type"}`.
enum ErrorShape: Sendable {
    case plain, openAI, tei
}

/// Whose API keys open a route.
enum KeyScope: Equatable, Sendable {
    /// The server's keys.
    case server
    /// The server's keys, or the keys of the endpoint the path names.
    case endpoint(String)
    /// Any key of the server or of an endpoint passes the head; the handler checks the endpoint
    /// once the body names it (`/v1/embeddings`) or answers only what the key opens (`/v1/models`).
    case namedInBody
    /// The admin API's own keys (`server.admin.apiKeys`), checked by `RequestGate` from the head.
    case admin
}

/// Groups of routes that `server.publicRoutes` can open to requests without a key.
public enum RouteGroup: String, Sendable, CaseIterable {
    case health, metrics, metadata, openapi
    /// Inference, statistics and repository routes: never public.
    case protected

    /// The groups a config may list in `server.publicRoutes`.
    public static let exemptible: [RouteGroup] = [.health, .metrics, .metadata, .openapi]
}

/// The `route` label of `sparseserve_http_requests_total`.
enum RouteLabel: String, Sendable, CaseIterable {
    case metadata, health, infer, statistics, metrics, openapi, embeddings, repository
    /// The TEI-compatible inference and tokenizer routes.
    case tei
    /// A path no route matches (or one that cannot be decoded).
    case other
}
