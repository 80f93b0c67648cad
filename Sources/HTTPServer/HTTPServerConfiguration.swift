/// Listener address, concurrency, limits and timeouts of an `HTTPServer`.
public struct HTTPServerConfiguration: Sendable {
    /// IPv4 or IPv6 literal ("127.0.0.1", "0.0.0.0", "::1", "::") or "localhost".
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks an ephemeral port (see `HTTPServer.boundPort`).
    public var port: Int = 8000
    /// Number of serial I/O queues; connections are assigned round-robin.
    public var ioThreads: Int = 2
    /// listen(2) backlog.
    public var backlog: Int32 = 256
    /// Open connections beyond this get a 503 JSON error with `Retry-After: 1` and are closed.
    public var maxConnections: Int = 1024
    /// Open connections from one client address (the peer IP, port ignored) beyond this get the same
    /// 503 as over `maxConnections`, so one client cannot hold every slot. Unlimited at this layer by
    /// default (a test harness or a proxy in front legitimately uses one address); SparseServe sets it
    /// from its `server.maxConnectionsPerClient`.
    public var maxConnectionsPerClient: Int = .max
    /// Longest request line (without CRLF); longer → 414 and close.
    public var maxRequestLineBytes: Int = 8192
    /// Largest header section (field lines with their CRLFs); larger → 431 and close.
    public var maxHeaderBytes: Int = 65536
    /// Most header fields per request; more → 431 and close.
    public var maxHeaderCount: Int = 100
    /// Default body cap when no `bodyLimit` closure is given; larger → 413 and close, before reading the body.
    public var maxBodyBytes: Int = 64 << 20
    /// Seconds from a request's first byte to the end of its headers; exceeded → 408 and close.
    public var headerReadTimeout: Double = 10
    /// Seconds from the end of the headers to the end of the body; exceeded → 408 and close.
    public var bodyReadTimeout: Double = 60
    /// Seconds a connection may sit with no request in progress (or a response write may stall) before it is closed silently.
    public var idleTimeout: Double = 60
    /// Seconds a new connection may wait before starting its first request (after the TLS handshake,
    /// if any) before it is closed silently: idle sockets that never send anything are dropped early.
    /// (`idleTimeout` applies instead when it is shorter.)
    public var firstRequestTimeout: Double = 5
    /// Total bytes of request bodies held at once, raw and decoded, from each request's head until
    /// its handler completes; a request that would exceed it → 503 with `Retry-After: 1` and close.
    /// Ignored when `bodyMemoryBudget` is set.
    public var maxTotalBodyBytes: Int = 512 << 20
    /// A budget shared with other servers (e.g. plaintext and TLS listeners of one process);
    /// nil = each server makes its own from `maxTotalBodyBytes`.
    public var bodyMemoryBudget: HTTPMemoryBudget?
    /// Value of the `Server` header.
    public var serverName: String = "SparseServe"
    /// Decode request bodies sent with `Content-Encoding: gzip | deflate | identity` (also stacked,
    /// e.g. `gzip, gzip`, up to two) before the handler sees them. The decoded size is capped by the
    /// same body limit as the raw body (413); invalid or truncated data → 400; any other coding → 415
    /// with `Accept-Encoding: gzip, deflate, identity`. All three answers close the connection.
    /// false = handlers get the body and header exactly as sent.
    public var decodeRequestBodies = true
    /// Responses with at least this many body bytes are compressed (gzip or deflate, whichever the
    /// client's `Accept-Encoding` prefers) and get `Vary: Accept-Encoding`. `Int.max` = never.
    /// A handler can override it per response with `HTTPResponse.compressionMinimumBytes`.
    public var compressionMinimumBytes = 1024
    /// zlib level for compressed responses, 1 (fastest) … 9 (smallest).
    public var compressionLevel = 6
    /// Serve HTTPS (TLS 1.2 or newer, through the system OpenSSL) instead of plaintext HTTP. For both
    /// side by side, run two `HTTPServer`s (one with, one without) that share a handler.
    public var tls: TLSConfiguration?

    public init() {}
}
