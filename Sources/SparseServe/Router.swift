import Foundation
import HTTPServer
import SparseModels
import SparseJSON

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
        case openAPI
        case embeddings
        case repositoryIndex
        case repositoryLoad(model: String)
        case repositoryUnload(model: String)

        /// Low-cardinality label for metrics.
        var label: String {
            switch self {
            case .serverMetadata, .modelMetadata, .modelConfig: return "metadata"
            case .live, .ready, .modelReady: return "health"
            case .infer: return "infer"
            case .modelStatistics: return "statistics"
            case .metrics: return "metrics"
            case .openAPI: return "openapi"
            case .embeddings: return "embeddings"
            case .repositoryIndex, .repositoryLoad, .repositoryUnload: return "repository"
            }
        }

        /// The group `server.publicRoutes` names to exempt a route from API keys.
        var accessGroup: String {
            switch self {
            case .live, .ready, .modelReady: return "health"
            case .metrics: return "metrics"
            case .openAPI: return "openapi"
            case .serverMetadata, .modelMetadata, .modelConfig: return "metadata"
            default: return "protected"
            }
        }

        /// The model a route acts on, for per-endpoint keys (repository actions need a server key).
        var model: String? {
            switch self {
            case .modelMetadata(let m, _), .modelReady(let m, _), .infer(let m, _), .modelConfig(let m, _):
                return m
            case .modelStatistics(let m, _): return m
            default: return nil
            }
        }

        var allowedMethods: [String] {
            switch self {
            case .infer, .repositoryIndex, .repositoryLoad, .repositoryUnload, .embeddings: return ["POST"]
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
            guard s.utf8.contains(UInt8(ascii: "%")) else {
                segments.append(s)
                continue
            }
            guard let decoded = s.removingPercentEncoding else {
                throw ProtocolError(400, "invalid percent-encoding in path segment '\(s)'")
            }
            segments.append(decoded)
        }
        if segments == ["metrics"] { return .metrics }
        if segments == ["openapi.yaml"] { return .openAPI }
        if segments == ["v1", "embeddings"] { return .embeddings }
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
        if rest == ["repository", "index"] { return .repositoryIndex }
        if rest.count == 4, rest[0] == "repository", rest[1] == "models", !rest[2].isEmpty {
            if rest[3] == "load" { return .repositoryLoad(model: rest[2]) }
            if rest[3] == "unload" { return .repositoryUnload(model: rest[2]) }
            return nil
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

    /// The client's `X-Request-ID` when it is short, visible ASCII; otherwise a fresh random id.
    static func requestID(_ given: String?) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 200, given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return given
        }
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var id = [UInt8](repeating: 0, count: 32)
        for half in 0..<2 {
            var v = generator.next() as UInt64
            for i in (0..<16).reversed() {
                id[half * 16 + i] = hex[Int(v & 15)]
                v >>= 4
            }
        }
        return String(decoding: id, as: UTF8.self)
    }

    /// Handles one request; `respond` is called exactly once, from any thread.
    public func handle(_ request: HTTPRequest, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let requestID = Router.requestID(request.headers["x-request-id"])
        let parsed = Result { try Router.route(path: request.path) }
        let label = (try? parsed.get())??.label ?? "other"
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
            response.headers.set(name: "X-Request-ID", value: requestID)
            respond(response)
        }
        do {
            guard let route = try parsed.get() else {
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
            // /v1/embeddings names its model in the body; it checks keys once it has parsed it.
            if route != .embeddings, !service.config.server.publicRoutes.contains(route.accessGroup),
               !service.isAuthorized(request.headers["authorization"], model: route.model) {
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
            case .repositoryIndex:
                let body = request.body.isEmpty ? JSON.object([]) : try JSON.parse(request.body)
                var index = service.repository.indexJSON()
                if let readyOnly = body["ready"]?.boolValue, readyOnly, let list = index.arrayValue {
                    index = .array(list.filter { $0["state"]?.stringValue == ModelState.ready.rawValue })
                }
                reply(.json(status: 200, JSONWriter.encode(index)))
            case .repositoryLoad(let model):
                let config = try service.endpointConfig(forLoad: model, body: request.body)
                service.repository.load(model, config: config) { error in
                    if let error = error as? ProtocolError {
                        reply(.error(status: error.status, error.message))
                    } else if let error {
                        reply(.error(status: 400, "failed to load '\(model)': \(error)"))
                    } else {
                        reply(.json(status: 200, Array("{}".utf8)))
                    }
                }
            case .repositoryUnload(let model):
                try service.repository.unload(model)
                reply(.json(status: 200, Array("{}".utf8)))
            case .embeddings:
                let body: OpenAIEmbeddings.Request
                do {
                    body = try OpenAIEmbeddings.parse(request.body)
                } catch let error as ProtocolError {
                    return reply(OpenAIEmbeddings.error(error.status, error.message))
                }
                // Per-endpoint keys apply to the endpoint named in the body.
                if !service.isAuthorized(request.headers["authorization"], model: body.model) {
                    var response = OpenAIEmbeddings.error(401, "missing or invalid API key; send 'Authorization: Bearer <key>'")
                    response.headers.set(name: "WWW-Authenticate", value: "Bearer realm=\"sparse-serve\"")
                    return reply(response)
                }
                let endpoint: Endpoint
                do {
                    endpoint = try service.endpoint(named: body.model, version: nil)
                } catch let error as ProtocolError {
                    return reply(OpenAIEmbeddings.error(error.status, error.message))
                }
                service.run(endpoint: endpoint, codec: OpenAIEmbeddings.codec(body, endpoint: endpoint.config), clientGone: request.isClientGone, respond: reply)
            case .openAPI:
                var response = HTTPResponse(status: 200, body: Array(OpenAPIDocument.yaml.utf8))
                response.headers.set(name: "Content-Type", value: "application/yaml; charset=utf-8")
                reply(response)
            case .metrics:
                var response = HTTPResponse(status: 200, body: Array(service.metrics.registry.render().utf8))
                response.headers.set(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
                reply(response)
            }
        } catch let error as ProtocolError {
            reply(.error(status: error.status, error.message))
        } catch let error as JSONParseError {
            reply(.error(status: 400, "malformed JSON body: \(error)"))
        } catch let error as ConfigError {
            reply(.error(status: 400, error.description))
        } catch {
            reply(.error(status: 500, "internal error: \(error)"))
        }
    }
}
