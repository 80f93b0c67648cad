import Foundation
import HTTPServer

/// Decides from a request's head — before any body byte is read, inflated or parsed — whether the
/// server reads it, and up to what size (the `HTTPHeadPolicy` of every listener):
///
/// 1. `Host` must be in the allowlist (on a loopback bind: loopback names only) → else 421;
/// 2. an `Origin` that is neither the server's own nor allowed by `server.cors` → 403;
/// 3. repository load/unload: 403 while the admin API is off, 415 without
///    `Content-Type: application/json`, 401 without an admin key;
/// 4. every other non-public route: 401 without a key that opens it (for `/v1/embeddings`, whose
///    model is named in the body, any key of the server or of an endpoint; the body's model is
///    checked again once parsed);
/// 5. the body limit: the endpoint's `maxBodyBytes` for inference (v2 and TEI), the largest of the
///    endpoints' for `/v1/embeddings` (each endpoint's is enforced once the body names it),
///    64 KiB for the small admin and index bodies.
struct RequestGate: Sendable {
    let service: InferenceService
    let allowedHosts: Set<String>?

    init(service: InferenceService) {
        self.service = service
        allowedHosts = service.config.server.security.hostAllowlist(bind: service.config.server.host)
    }

    static let smallBodyBytes = 64 << 10
    static let bearer = "Bearer realm=\"sparse-serve\""

    /// The decision, with a refusal carrying `X-Request-ID` and counted like routed answers.
    func decide(_ head: HTTPRequest) -> HTTPHeadDecision {
        let decision = check(head)
        guard case .reject(var response) = decision else { return decision }
        response.headers.set(name: "X-Request-ID", value: RequestIDs.id(head.headers["x-request-id"]))
        let route = routeOf(head)
        service.metrics.countHTTP(route?.label ?? .other, status: response.status)
        service.tracing?.refused(head, route: route, status: response.status, requestID: response.headers["x-request-id"])
        return .reject(response)
    }

    private func check(_ head: HTTPRequest) -> HTTPHeadDecision {
        if let refusal = checkHost(head.headers["host"]) ?? checkOrigin(head) { return .reject(refusal) }
        guard let route = routeOf(head) else {
            return .accept(maxBodyBytes: Self.smallBodyBytes) // 404 or 400 from the router
        }
        if head.method == "OPTIONS" { return .accept(maxBodyBytes: 0) }
        if route.keyScope == .admin { return checkAdmin(head).map(HTTPHeadDecision.reject) ?? .accept(maxBodyBytes: Self.smallBodyBytes) }
        if !service.config.server.publicRoutes.contains(route.group) && !isAuthorized(head, route) {
            return .reject(Self.unauthorized(route.errorShape))
        }
        return .accept(maxBodyBytes: bodyLimit(route))
    }

    private func routeOf(_ head: HTTPRequest) -> Route? {
        (try? Route(path: head.path, teiModel: { TEIRoutes.endpointName(service) })) ?? nil
    }

    /// The key check `APIKeyAuth` makes, from the head; for `/v1/embeddings` (endpoint named in the
    /// body) a key of the server or of any endpoint, or none when some endpoint needs none.
    private func isAuthorized(_ head: HTTPRequest, _ route: Route) -> Bool {
        let header = head.headers["authorization"], server = service.config.server
        let keys: [String]
        switch route.keyScope {
        case .server: keys = server.apiKeys
        case .endpoint(let name): keys = server.apiKeys + (service.repository.entry(name)?.config.apiKeys ?? [])
        case .namedInBody:
            // (Every endpoint's config, gathered only here: ~8 000 instructions a request when it was done for all routes.)
            let configs = service.repository.names.compactMap { service.repository.entry($0)?.config }
            if server.apiKeys.isEmpty && configs.contains(where: { $0.apiKeys.isEmpty }) { return true }
            keys = server.apiKeys + configs.flatMap(\.apiKeys)
        case .admin: return false
        }
        return keys.isEmpty || APIKeyAuth.keyMatches(header, keys: keys)
    }

    private func bodyLimit(_ route: Route) -> Int {
        let server = service.config.server
        switch route {
        case .infer(let model, _):
            return service.repository.entry(model)?.config.maxBodyBytes ?? server.maxBodyBytes
        case .tei(let operation, let model) where operation.takesBody:
            return service.repository.entry(model)?.config.maxBodyBytes ?? server.maxBodyBytes
        case .embeddings:
            let limits = service.repository.names.compactMap { service.repository.entry($0)?.config.maxBodyBytes ?? server.maxBodyBytes }
            return limits.max() ?? server.maxBodyBytes
        default:
            return Self.smallBodyBytes
        }
    }

    /// 421 for a `Host` outside the allowlist (a DNS-rebinding page names its own host).
    private func checkHost(_ host: String?) -> HTTPResponse? {
        guard let allowedHosts, let host else { return nil }
        let name = Self.hostName(host)
        guard !allowedHosts.contains(name) else { return nil }
        return .error(status: 421, "Host '\(host)' is not served here; the server answers \(allowedHosts.sorted().joined(separator: ", ")) (set server.allowedHosts)")
    }

    /// `example.com:8000` → `example.com`, `[::1]:8000` → `::1`, lower-cased.
    static func hostName(_ host: String) -> String {
        var h = Substring(host.lowercased())
        if h.hasPrefix("[") {
            h = h.dropFirst()
            if let end = h.firstIndex(of: "]") { h = h[..<end] }
            return String(h)
        }
        if let colon = h.lastIndex(of: ":"), h.firstIndex(of: ":") == colon { h = h[..<colon] }
        return String(h)
    }

    /// 403 for a browser request from an origin the CORS config does not allow. The server's own
    /// origin (the same host and port as `Host`) is always allowed.
    private func checkOrigin(_ head: HTTPRequest) -> HTTPResponse? {
        guard let origin = head.headers["origin"] else { return nil }
        if CORS(config: service.config.server.cors).allowedOrigin(origin) != nil { return nil }
        if let host = head.headers["host"], let authority = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first,
           (origin.hasPrefix("http://") || origin.hasPrefix("https://")), authority.lowercased() == host.lowercased() {
            return nil
        }
        return .error(status: 403, "cross-origin request from '\(origin)' refused: it is not in server.cors.allowOrigins")
    }

    private func checkAdmin(_ head: HTTPRequest) -> HTTPResponse? {
        let admin = service.config.server.security.admin
        guard admin.enabled else {
            return .error(status: 403, "the repository admin API (load/unload) is off; enable it with server.admin (enabled, apiKeys, modelRoot)")
        }
        let type = head.headers["content-type"]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            return .error(status: 415, "repository load and unload need 'Content-Type: application/json'")
        }
        guard APIKeyAuth.keyMatches(head.headers["authorization"], keys: admin.apiKeys) else {
            return Self.unauthorized(.plain, admin: true)
        }
        return nil
    }

    static func unauthorized(_ shape: ErrorShape, admin: Bool = false) -> HTTPResponse {
        let message = admin ? "missing or invalid admin key; send 'Authorization: Bearer <admin key>'"
                            : "missing or invalid API key; send 'Authorization: Bearer <key>'"
        var response: HTTPResponse
        switch shape {
        case .plain: response = .error(status: 401, message)
        case .openAI: response = OpenAIEmbeddings.error(401, message)
        case .tei: response = TEIErrors.response(401, message)
        }
        response.headers.set(name: "WWW-Authenticate", value: bearer)
        return response
    }
}
