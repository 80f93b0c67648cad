import HTTPServer

/// Cross-origin access for browser clients (`server.cors`): allowed origins get
/// `Access-Control-Allow-Origin` (and `Vary: Origin` unless every origin is allowed) on every
/// response, and their `OPTIONS` preflights are answered here with the route's methods.
struct CORS: Middleware {
    let config: CORSConfig?

    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
        guard let config, let origin = allowedOrigin(request.headers["origin"]) else { return nil }
        let next = respond
        respond = { response in
            var response = response
            response.headers.set(name: "Access-Control-Allow-Origin", value: origin)
            if origin != "*" { response.headers.add(name: "Vary", value: "Origin") }
            response.headers.set(name: "Access-Control-Expose-Headers", value: "Inference-Header-Content-Length, X-Request-ID, Retry-After")
            next(response)
        }
        guard request.method == "OPTIONS", let route else { return nil }
        var preflight = HTTPResponse(status: 204)
        preflight.headers.set(name: "Access-Control-Allow-Methods", value: (route.allowedMethods + ["OPTIONS"]).joined(separator: ", "))
        preflight.headers.set(name: "Access-Control-Allow-Headers",
                              value: request.headers["access-control-request-headers"] ?? "Content-Type, Authorization")
        preflight.headers.set(name: "Access-Control-Max-Age", value: String(config.maxAgeSeconds))
        return preflight
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, or nil when CORS is off or the origin is not allowed.
    func allowedOrigin(_ origin: String?) -> String? {
        guard let config, let origin else { return nil }
        if config.allowOrigins.contains("*") { return "*" }
        return config.allowOrigins.contains(origin) ? origin : nil
    }
}
