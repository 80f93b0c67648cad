import HTTPServer

/// Answers 405 (with `Allow`) when the route does not take the request's method.
struct MethodCheck: Middleware {
    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
        guard let route, !route.allowedMethods.contains(request.method) else { return nil }
        let allowed = route.allowedMethods
        var response = HTTPResponse.error(status: 405, "method \(request.method) is not allowed on \(request.path); use \(allowed.joined(separator: " or "))")
        response.headers.set(name: "Allow", value: allowed.joined(separator: ", "))
        return response
    }
}
