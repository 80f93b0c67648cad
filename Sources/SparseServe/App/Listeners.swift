import HTTPServer
import Logging

/// The listening sockets of `server`: plaintext on `server.port`, and HTTPS on `server.tls.port`
/// beside it (or HTTPS alone on `server.port` when `tls.port` is absent).
enum Listeners {
    /// Starts every listener with `router` as the handler; on a failure the ones already started stop.
    static func start(_ s: ServerConfig, router: Router, repository: ModelRepository,
                      logger: Logger) throws -> [(server: HTTPServer, url: String)] {
        let bodyLimit = self.bodyLimit(default: s.maxBodyBytes, repository: repository)
        var started: [(server: HTTPServer, url: String)] = []
        for (configuration, scheme) in configurations(s) {
            let server = HTTPServer(configuration: configuration, logger: logger, bodyLimit: bodyLimit) { request, respond in
                router.handle(request, respond)
            }
            do {
                try server.start()
            } catch {
                for other in started { other.server.stop(gracePeriod: 0) }
                throw error
            }
            let host = server.boundAddress.contains(":") ? "[\(server.boundAddress)]" : server.boundAddress
            started.append((server, "\(scheme)://\(host):\(server.boundPort)"))
        }
        return started
    }

    /// Each listener's HTTP settings and URL scheme.
    static func configurations(_ s: ServerConfig) -> [(HTTPServerConfiguration, String)] {
        var http = HTTPServerConfiguration()
        http.host = s.host
        http.port = s.port
        http.ioThreads = s.ioThreads
        http.maxConnections = s.maxConnections
        http.maxBodyBytes = s.maxBodyBytes
        http.headerReadTimeout = s.headerReadTimeoutSeconds
        http.bodyReadTimeout = s.bodyReadTimeoutSeconds
        http.idleTimeout = s.idleTimeoutSeconds
        http.compressionMinimumBytes = s.gzipEnabled ? s.gzipMinimumBytes : Int.max
        guard let tls = s.tls else { return [(http, "http")] }
        var secure = http
        secure.tls = TLSConfiguration(certificatePath: tls.certificate, privateKeyPath: tls.privateKey, clientCAPath: tls.clientCA)
        guard let port = tls.port else { return [(secure, "https")] }
        secure.port = port
        return [(http, "http"), (secure, "https")]
    }

    /// The largest body a request may send: the endpoint's `maxBodyBytes` for its infer route, else the server's.
    static func bodyLimit(default limit: Int, repository: ModelRepository) -> @Sendable (String, String) -> Int {
        { _, path in
            if case .infer(let model, _)? = try? Route(path: path), let endpointLimit = repository.entry(model)?.config.maxBodyBytes {
                return endpointLimit
            }
            return limit
        }
    }
}
