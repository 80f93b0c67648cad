import Foundation

/// Server-wide settings (`"server"` in the config file).
public struct ServerConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// Compute threads that run inference (never the I/O threads).
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    public var ioThreads = 2
    /// Threads one kernel call may be split across (intra-op; default: the CPU count). Splitting
    /// cuts single-request latency; under heavy concurrency `1` avoids oversubscribing the cores.
    public var kernelThreads: Int?
    public var maxBodyBytes = 64 << 20
    public var maxConnections = 1024
    /// Requests waiting for a compute thread before new ones get 503.
    public var maxQueueSize = 1024
    public var headerReadTimeoutSeconds = 10.0
    public var bodyReadTimeoutSeconds = 60.0
    public var idleTimeoutSeconds = 60.0
    /// true: a model that fails to load at start-up stops the process (exit 1). false: the
    /// other endpoints serve, the failed one is UNAVAILABLE with its reason (index, logs, metrics).
    public var exitOnModelLoadError = true
    /// How long a SIGTERM/SIGINT waits for in-flight requests before closing everything.
    public var gracePeriodSeconds = 30.0
    /// When non-empty, every route except the public ones needs `Authorization: Bearer <key>`.
    public var apiKeys: [String] = []
    /// Route groups reachable without a key even when keys are configured:
    /// any of `RouteGroup.exemptible` (health, metrics, metadata, openapi).
    public var publicRoutes: Set<RouteGroup> = [.health, .metrics, .openapi]
    /// Cross-origin access for browser clients; nil = no CORS headers.
    public var cors: CORSConfig?
    /// HTTPS listener settings; nil = plaintext only.
    public var tls: TLSSettings?
    /// Responses at least this large are compressed when the client accepts gzip/deflate
    /// (per endpoint: `endpoints[i].gzip.minimumBytes`).
    public var gzipMinimumBytes = 1024
    /// false = never compress responses (requests with Content-Encoding are still decoded).
    public var gzipEnabled = true
    /// The admin API, `Host` allowlist, connection fairness and memory ceilings.
    public var security = SecuritySettings()
    public init() {}
}

/// `"server.tls"`: certificate and key (PEM paths, resolved against the config file's folder),
/// optional client CA for mutual TLS, and an optional separate port so plaintext and TLS
/// listeners can run side by side (without `port`, the main port speaks TLS).
public struct TLSSettings: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String
    public var clientCA: String?
    public var port: Int?
}

/// CORS settings (`"server.cors"`): which origins may call the API from a browser.
public struct CORSConfig: Sendable, Equatable {
    /// Allowed origins, or ["*"] for any.
    public var allowOrigins: [String] = ["*"]
    public var maxAgeSeconds = 600
    public init() {}
}
