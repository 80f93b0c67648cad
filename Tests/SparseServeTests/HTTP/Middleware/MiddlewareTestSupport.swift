import Foundation
import HTTPServer
@testable import SparseServe

/// Collects what a responder was called with.
final class ResponseSink: @unchecked Sendable {
    private let lock = NSLock()
    private var responses: [HTTPResponse] = []
    var all: [HTTPResponse] { lock.lock(); defer { lock.unlock() }; return responses }
    var responder: Responder { { r in self.lock.lock(); self.responses.append(r); self.lock.unlock() } }
}

/// Runs one middleware on a request: its own answer, and what a handler's 200 looks like after
/// passing through the responder it wrapped.
func pass(_ middleware: any Middleware, _ request: HTTPRequest, path: String? = nil) throws -> (answer: HTTPResponse?, passed: HTTPResponse) {
    let sink = ResponseSink()
    var respond = sink.responder
    let route = try Route(path: path ?? request.path)
    let answer = middleware.handle(request, route: route, respond: &respond)
    respond(HTTPResponse(status: 200))
    return (answer, sink.all[0])
}

func request(_ method: String = "GET", _ target: String, _ headers: [(String, String)] = []) -> HTTPRequest {
    HTTPRequest(method: method, target: target, headers: HTTPHeaders(headers))
}
