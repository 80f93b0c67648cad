import HTTPServer

/// Sends the response of one request; called exactly once, from any thread.
typealias Responder = @Sendable (HTTPResponse) -> Void

/// One step the router runs before a route's handler. It may answer the request itself (the
/// handler is then not called) and may wrap the responder to decorate every response, including
/// the answers of the steps after it. Each step is unit-tested without sockets.
protocol Middleware: Sendable {
    /// Returns a response to end the request here, or nil to pass it on. `route` is nil when
    /// no route matches the path.
    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse?
}

extension Array where Element == any Middleware {
    /// Runs the steps in order; returns the responder (wrapped by every step that ran) and the
    /// first step's answer, if one answered.
    func run(_ request: HTTPRequest, route: Route?, respond: @escaping Responder) -> (respond: Responder, answer: HTTPResponse?) {
        var respond = respond
        for step in self {
            if let answer = step.handle(request, route: route, respond: &respond) { return (respond, answer) }
        }
        return (respond, nil)
    }
}
