import HTTPServer

/// Tags every response with `X-Request-ID`: the client's value when it is short visible ASCII,
/// otherwise a fresh random id.
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
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var id = [UInt8](repeating: 0, count: 32)
        for half in 0..<2 {
            var v = generator.next() as UInt64
            for i in (0..<16).reversed() {
                id[half * 16 + i] = hex[Int(v & 15)]
                v >>= 4
            }
        }
        return String(decoding: id, as: UTF8.self)
    }
}
