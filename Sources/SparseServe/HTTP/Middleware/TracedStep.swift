import Dispatch
import HTTPServer

/// Runs a middleware step inside a child span of the request's trace (`authentication` around
/// the key check). Only put in the chain when tracing is on.
struct TracedStep: Middleware {
    let name: String
    let step: any Middleware

    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
        guard let trace = RequestTrace.current else { return step.handle(request, route: route, respond: &respond) }
        let start = DispatchTime.now().uptimeNanoseconds
        let answer = step.handle(request, route: route, respond: &respond)
        let result = answer.map { "answered \($0.status)" } ?? "passed"  // (the closure captures a string, not the response)
        trace.record(name, from: start, to: DispatchTime.now().uptimeNanoseconds) { $0.set("sparseserve.step.result", result) }
        return answer
    }
}
