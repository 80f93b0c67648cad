import Foundation
import HTTPServer

/// `Authorization: Bearer <key>` checks. The server's keys open every route; an endpoint's keys
/// open the routes that name it (`Route.keyScope`). Routes in a public group (`server.publicRoutes`)
/// and requests when no key applies pass. Keys are compared in constant time.
struct APIKeyAuth: Middleware {
    let serverKeys: [String]
    let publicGroups: Set<RouteGroup>
    /// The keys configured on an endpoint (empty when it has none or does not exist).
    let endpointKeys: @Sendable (String) -> [String]

    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
        guard let route, !publicGroups.contains(route.group) else { return nil }
        let model: String?
        switch route.keyScope {
        case .server: model = nil
        case .endpoint(let name): model = name
        case .namedInBody: return nil  // the handler calls `isAuthorized` once it has the name
        case .admin: return nil        // RequestGate checked the admin key before the body was read
        }
        return isAuthorized(request.headers["authorization"], model: model) ? nil : Self.unauthorized()
    }

    /// Whether `header` carries a key for `model` (nil: a server key).
    func isAuthorized(_ header: String?, model: String?) -> Bool {
        let keys = serverKeys + (model.map(endpointKeys) ?? [])
        guard !keys.isEmpty else { return true }
        return Self.keyMatches(header, keys: keys)
    }

    /// Whether `Authorization: Bearer <key>` carries one of `keys` (none matches an empty list).
    static func keyMatches(_ header: String?, keys: [String]) -> Bool {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return false }
        let given = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        var match = false
        for key in keys {
            let k = Array(key.utf8)
            var diff = UInt8(k.count == given.count ? 0 : 1)
            for i in 0..<k.count { diff |= k[i] ^ (i < given.count ? given[i] : 0) }
            if diff == 0 { match = true }
        }
        return match
    }

    /// 401 with `WWW-Authenticate`; `body` builds the protocol's error body.
    static func unauthorized(_ body: (Int, String) -> HTTPResponse = { .error(status: $0, $1) }) -> HTTPResponse {
        var response = body(401, "missing or invalid API key; send 'Authorization: Bearer <key>'")
        response.headers.set(name: "WWW-Authenticate", value: "Bearer realm=\"sparse-serve\"")
        return response
    }
}
