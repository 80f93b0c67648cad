import HTTPServer

/// Charges the JSON a request will be parsed into (the boxed tree, then decoded tensors) to the
/// request-body memory budget before parsing, by an estimate per byte of JSON text.
enum JSONTreeCharge {
    static let bytesPerJSONByte = 16

    /// nil when the charge fits (or the request has no budget account); else a 503 with
    /// `Retry-After`. Only the JSON part of a binary-extension body counts.
    static func refusal(_ request: HTTPRequest) -> HTTPResponse? {
        guard let account = request.bodyAccount else { return nil }
        let jsonBytes = request.headers["inference-header-content-length"].flatMap { Int($0) }.map { min(max(0, $0), request.body.count) }
            ?? request.body.count
        let (bytes, overflow) = jsonBytes.multipliedReportingOverflow(by: bytesPerJSONByte)
        guard overflow || !account.reserve(bytes) else { return nil }
        var response = HTTPResponse.error(status: 503, "the server is holding too many request bodies in memory to parse \(jsonBytes) bytes of JSON now; retry later (server.maxTotalBodyBytes)")
        response.headers.set(name: "Retry-After", value: "1")
        return response
    }
}
