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
        let generator = threadGenerator()
        return Hex.string(generator.pointee.next(), generator.pointee.next())
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { $0?.assumingMemoryBound(to: Xoshiro256.self).deallocate() }
        return key
    }()

    /// The calling thread's generator, made on its first id.
    private static func threadGenerator() -> UnsafeMutablePointer<Xoshiro256> {
        if let raw = pthread_getspecific(key) { return raw.assumingMemoryBound(to: Xoshiro256.self) }
        let generator = UnsafeMutablePointer<Xoshiro256>.allocate(capacity: 1)
        generator.initialize(to: Xoshiro256(seed: SystemRandomNumberGenerator()))
        pthread_setspecific(key, generator)
        return generator
    }
}
