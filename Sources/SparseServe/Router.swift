import Foundation
import HTTPServer
import SparseModels

/// Maps HTTP requests to the v2 protocol's actions. Health, metadata and errors are answered on the
/// calling I/O queue; inference (decode, forward pass, encode) runs on the compute queue.
public final class Router: @unchecked Sendable {
    private let service: InferenceService

    public init(service: InferenceService) {
        self.service = service
    }

    /// The route a request path names, after percent-decoding its segments.
    enum Route: Equatable {
        case serverMetadata
        case live
        case ready
        case modelMetadata(model: String, version: String?)
        case modelReady(model: String, version: String?)
        case infer(model: String, version: String?)
        case modelStatistics(model: String?, version: String?)
        case modelConfig(model: String, version: String?)
        case metrics

        /// Low-cardinality label for metrics.
        var label: String {
            switch self {
            case .serverMetadata, .modelMetadata, .modelConfig: return "metadata"
            case .live, .ready, .modelReady: return "health"
            case .infer: return "infer"
            case .modelStatistics: return "statistics"
            case .metrics: return "metrics"
            }
        }

        /// Health and metrics stay public so probes and scrapers need no secret.
        var requiresAuthentication: Bool {
            switch self {
            case .live, .ready, .metrics: return false
            default: return true
            }
        }

        var allowedMethods: [String] {
            switch self {
            case .infer: return ["POST"]
            default: return ["GET", "HEAD"]
            }
        }
    }

    static func route(path: String) throws -> Route? {
        guard path.hasPrefix("/") else { return nil }
        var raw = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        if raw.count > 1, raw.last == "" { raw.removeLast() }
        var segments: [String] = []
        for s in raw {
            guard let decoded = s.removingPercentEncoding else {
                throw ProtocolError(400, "invalid percent-encoding in path segment '\(s)'")
            }
            segments.append(decoded)
        }
        if segments == ["metrics"] { return .metrics }
        guard segments.first == "v2" else { return nil }
        let rest = Array(segments.dropFirst())
        switch rest.count {
        case 0: return .serverMetadata
        case 2 where rest[0] == "health":
            if rest[1] == "live" { return .live }
            if rest[1] == "ready" { return .ready }
            return nil
        default: break
        }
        if rest == ["models", "stats"] { return .modelStatistics(model: nil, version: nil) }
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

    /// Handles one request; `respond` is called exactly once, from any thread.
    public func handle(_ request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let requestID = request.headers["x-request-id"]
        let route = try? Router.route(path: request.path)
        let label = route?.label ?? "other"
        let counter = service.metrics.httpRequests
        let corsOrigin = service.corsOrigin(for: request.headers["origin"])
        let reply: @Sendable (HTTPResponse) -> Void = { response in
            counter.add(1, label, String(response.status))
            var response = response
            if let corsOrigin {
                response.headers.set(name: "Access-Control-Allow-Origin", value: corsOrigin)
                if corsOrigin != "*" { response.headers.add(name: "Vary", value: "Origin") }
                response.headers.set(name: "Access-Control-Expose-Headers", value: "Inference-Header-Content-Length, X-Request-ID, Retry-After")
            }
            if let requestID, !requestID.isEmpty, requestID.utf8.count <= 200 {
                response.headers.set(name: "X-Request-ID", value: requestID)
            }
            respond(response)
        }
        do {
            guard let route = try Router.route(path: request.path) else {
                return reply(.error(status: 404, "no route for \(request.method) \(request.path)"))
            }
            if request.method == "OPTIONS", let cors = service.config.server.cors, corsOrigin != nil {
                var response = HTTPResponse(status: 204)
                response.headers.set(name: "Access-Control-Allow-Methods", value: (route.allowedMethods + ["OPTIONS"]).joined(separator: ", "))
                response.headers.set(name: "Access-Control-Allow-Headers",
                                     value: request.headers["access-control-request-headers"] ?? "Content-Type, Authorization")
                response.headers.set(name: "Access-Control-Max-Age", value: String(cors.maxAgeSeconds))
                return reply(response)
            }
            guard route.allowedMethods.contains(request.method) else {
                var response = HTTPResponse.error(status: 405, "method \(request.method) is not allowed on \(request.path); use \(route.allowedMethods.joined(separator: " or "))")
                response.headers.set(name: "Allow", value: route.allowedMethods.joined(separator: ", "))
                return reply(response)
            }
            if route.requiresAuthentication, !service.isAuthorized(request.headers["authorization"]) {
                var response = HTTPResponse.error(status: 401, "missing or invalid API key; send 'Authorization: Bearer <key>'")
                response.headers.set(name: "WWW-Authenticate", value: "Bearer realm=\"sparse-serve\"")
                return reply(response)
            }
            switch route {
            case .serverMetadata:
                reply(.json(status: 200, JSONWriter.encode(service.serverMetadata())))
            case .live:
                reply(.json(status: 200, JSONWriter.encode(.object([("live", .bool(true))]))))
            case .ready:
                let ready = service.isReady
                reply(.json(status: ready ? 200 : 503, JSONWriter.encode(.object([("ready", .bool(ready))]))))
            case .modelMetadata(let model, let version):
                let endpoint = try service.endpoint(named: model, version: version)
                reply(.json(status: 200, JSONWriter.encode(endpoint.metadataJSON())))
            case .modelReady(let model, let version):
                let endpoint = try service.endpoint(named: model, version: version)
                let ready = service.isReady
                reply(.json(status: ready ? 200 : 503, JSONWriter.encode(.object([
                    ("name", .string(endpoint.name)), ("ready", .bool(ready)),
                ]))))
            case .infer(let model, let version):
                let endpoint = try service.endpoint(named: model, version: version)
                service.infer(endpoint: endpoint, request: request, respond: reply)
            case .modelStatistics(let model, let version):
                let list = try model.map { [try service.endpoint(named: $0, version: version)] } ?? service.endpoints
                reply(.json(status: 200, JSONWriter.encode(service.statisticsJSON(list))))
            case .modelConfig(let model, let version):
                let endpoint = try service.endpoint(named: model, version: version)
                reply(.json(status: 200, JSONWriter.encode(endpoint.modelConfigJSON())))
            case .metrics:
                var response = HTTPResponse(status: 200, body: Array(service.metrics.registry.render().utf8))
                response.headers.set(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
                reply(response)
            }
        } catch let error as ProtocolError {
            reply(.error(status: error.status, error.message))
        } catch {
            reply(.error(status: 500, "internal error: \(error)"))
        }
    }
}
