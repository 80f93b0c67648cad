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
    case repositoryIndex
    case repositoryLoad(model: String)
    case repositoryUnload(model: String)

    /// Which API keys a route needs. The switch has no default, so a new route must choose; a
    /// route that names an endpoint in its path checks that endpoint's keys (unit-tested).
    var keyScope: KeyScope {
        switch self {
        case .serverMetadata, .live, .ready, .metrics, .openAPI, .repositoryIndex:
            return .server
        case .modelMetadata(let model, _), .modelReady(let model, _), .infer(let model, _), .modelConfig(let model, _):
            return .endpoint(model)
        case .modelStatistics(let model, _):
            return model.map(KeyScope.endpoint) ?? .server
        case .repositoryLoad, .repositoryUnload:
            // Loading and unloading change what the server serves: admin keys only (RequestGate).
            return .admin
        case .embeddings:
            return .namedInBody
        }
    }

    /// The group `server.publicRoutes` names to exempt a route from API keys.
    var group: RouteGroup {
        switch self {
        case .live, .ready: return .health
        case .metrics: return .metrics
        case .openAPI: return .openapi
        // A model's readiness names the model: metadata, not health (probes use /v2/health/ready).
        case .serverMetadata, .modelMetadata, .modelConfig, .modelReady: return .metadata
        case .infer, .modelStatistics, .embeddings, .repositoryIndex, .repositoryLoad, .repositoryUnload: return .protected
        }
    }

    /// Low-cardinality label of `sparseserve_http_requests_total`.
    var label: RouteLabel {
        switch self {
        case .serverMetadata, .modelMetadata, .modelConfig: return .metadata
        case .live, .ready, .modelReady: return .health
        case .infer: return .infer
        case .modelStatistics: return .statistics
        case .metrics: return .metrics
        case .openAPI: return .openapi
        case .embeddings: return .embeddings
        case .repositoryIndex, .repositoryLoad, .repositoryUnload: return .repository
        }
    }

    var allowedMethods: [String] {
        switch self {
        case .infer, .repositoryIndex, .repositoryLoad, .repositoryUnload, .embeddings: return ["POST"]
        default: return ["GET", "HEAD"]
        }
    }

    /// The route of `path`, nil when none matches; a malformed percent-encoding is a 400.
    init?(path: String) throws {
        guard path.hasPrefix("/") else { return nil }
        let segments = try Self.segments(of: path)
        switch segments {
        case ["metrics"]: self = .metrics
        case ["openapi.yaml"]: self = .openAPI
        case ["v1", "embeddings"]: self = .embeddings
        default:
            guard segments.first == "v2", let route = Self.v2(Array(segments.dropFirst())) else { return nil }
            self = route
        }
    }

    /// Path segments, percent-decoded, without the empty one a trailing slash leaves.
    private static func segments(of path: String) throws -> [String] {
        var raw = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        if raw.count > 1, raw.last == "" { raw.removeLast() }
        return try raw.map { s in
            guard s.utf8.contains(UInt8(ascii: "%")) else { return s }
            guard let decoded = s.removingPercentEncoding else {
                throw ProtocolError(400, "invalid percent-encoding in path segment '\(s)'")
            }
            return decoded
        }
    }

    /// Routes under `/v2/`.
    private static func v2(_ rest: [String]) -> Route? {
        switch rest {
        case []: return .serverMetadata
        case ["health", "live"]: return .live
        case ["health", "ready"]: return .ready
        case ["models", "stats"]: return .modelStatistics(model: nil, version: nil)
        case ["repository", "index"]: return .repositoryIndex
        default: break
        }
        if rest.count == 4, rest[0] == "repository", rest[1] == "models", !rest[2].isEmpty {
            switch rest[3] {
            case "load": return .repositoryLoad(model: rest[2])
            case "unload": return .repositoryUnload(model: rest[2])
            default: return nil
            }
        }
        guard rest.count >= 2, rest[0] == "models", !rest[1].isEmpty else { return nil }
        let model = rest[1]
        var tail = Array(rest.dropFirst(2))
        var version: String?
        if tail.count >= 2, tail[0] == "versions" {
            version = tail[1]
            tail.removeFirst(2)
        }
        switch tail {
        case []: return .modelMetadata(model: model, version: version)
        case ["ready"]: return .modelReady(model: model, version: version)
        case ["infer"]: return .infer(model: model, version: version)
        case ["stats"]: return .modelStatistics(model: model, version: version)
        case ["config"]: return .modelConfig(model: model, version: version)
        default: return nil
        }
    }
}

/// Whose API keys open a route.
enum KeyScope: Equatable, Sendable {
    /// The server's keys.
    case server
    /// The server's keys, or the keys of the endpoint the path names.
    case endpoint(String)
    /// The endpoint is named in the body: the handler checks once it has parsed it.
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
    /// A path no route matches (or one that cannot be decoded).
    case other
}
