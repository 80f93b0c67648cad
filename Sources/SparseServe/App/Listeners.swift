import HTTPServer
import Logging

/// The listening sockets of `server`: plaintext on `server.port`, and HTTPS on `server.tls.port`
/// beside it (or HTTPS alone on `server.port` when `tls.port` is absent).
enum Listeners {
    /// Starts every listener with `router` as the handler; on a failure the ones already started stop.
    /// Every listener asks `gate` about each request head before reading its body.
    static func start(_ s: ServerConfig, router: Router, gate: RequestGate,
                      logger: Logger) throws -> [(server: HTTPServer, url: String)] {
        var started: [(server: HTTPServer, url: String)] = []
        for (configuration, scheme) in configurations(s) {
            let server = HTTPServer(configuration: configuration, logger: logger, headPolicy: gate.decide) { request, respond in
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
        http.maxConnectionsPerClient = s.security.perClientLimit(s)
        http.firstRequestTimeout = s.security.firstRequestTimeoutSeconds
        http.bodyMemoryBudget = HTTPMemoryBudget(limit: s.security.maxTotalBodyBytes) // shared by both listeners
        guard let tls = s.tls else { return [(http, "http")] }
        var secure = http
        secure.tls = TLSConfiguration(certificatePath: tls.certificate, privateKeyPath: tls.privateKey, clientCAPath: tls.clientCA)
        guard let port = tls.port else { return [(secure, "https")] }
        secure.port = port
        return [(http, "http"), (secure, "https")]
    }
}
