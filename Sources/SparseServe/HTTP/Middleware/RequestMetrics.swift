import HTTPServer

/// Counts every response in `sparseserve_http_requests_total` by route label and status.
struct RequestMetrics: Middleware {
    let metrics: ServerMetrics

    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
        let label = route?.label ?? .other, metrics = metrics
        let next = respond
        respond = { response in
            metrics.countHTTP(label, status: response.status)
            next(response)
        }
        return nil
    }
}
