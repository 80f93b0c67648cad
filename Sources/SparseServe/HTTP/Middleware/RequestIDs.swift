import Foundation
import HTTPServer

/// Tags every response with `X-Request-ID`: the client's value when it is short visible ASCII,
/// otherwise a fresh random id (from a per-thread xoshiro256** generator seeded once from the
/// system's: an id names a request, it is no secret, and drawing it costs no system call).
struct RequestIDs: Middleware {
    func handle(_ request: HTTPRequest, route: Route?, respond: inout Responder) -> HTTPResponse? {
        let id = Self.id(request.headers["x-request-id"])
        let next = respond
        respond = { response in
            var response = response
            response.headers.set(name: "X-Request-ID", value: id)
            next(response)
        }
        return nil
    }

    static func id(_ given: String?) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 200, given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return given
        }
        return ThreadIDs.draw { Hex.string($0.next(), $0.next()) }
    }
}
