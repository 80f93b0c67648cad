import Foundation

/// A fully received HTTP/1.x request (body already de-chunked, and decoded when it was sent with
/// `Content-Encoding: gzip | deflate`: see `HTTPServerConfiguration.decodeRequestBodies`).
public struct HTTPRequest: Sendable {
    /// Request method as sent, e.g. "GET", "POST", "HEAD".
    public var method: String
    /// Raw request-target, e.g. "/v2/models/a%20b/infer?x=1".
    public var target: String
    /// The target's path without the query; not percent-decoded. For absolute-form targets
    /// ("http://host/p") this is the path part ("/p").
    public var path: String
    /// Text after the first '?', or nil when the target has none.
    public var query: String?
    /// Minor version of HTTP/1.x (0 or 1).
    public var versionMinor: Int
    /// Header fields in arrival order.
    public var headers: HTTPHeaders
    /// The body; empty when the request had none. When the server decoded a `Content-Encoding`, this
    /// is the decoded body, `Content-Encoding` is removed and `Content-Length` (if sent) is its size.
    public var body: [UInt8]
    /// Peer address ("127.0.0.1:53211", "[::1]:53211"), empty when unknown.
    public var remoteAddress: String
    /// Turns true once the client has closed or reset its connection while this request is being
    /// handled; a handler can then drop queued work for it. Cheap, callable from any thread. (A client
    /// that half-closes after sending its request counts as gone too; see `HTTPConnectionState`.)
    /// Always false for requests built by hand.
    public var isClientGone: @Sendable () -> Bool = { false }
    /// The same information with a callback (`onClientGone`), set by the server for every request it
    /// hands to a handler; nil for requests built by hand.
    public var connectionState: HTTPConnectionState?
    /// This request's share of the server's body memory budget (raw and decoded body already
    /// reserved); a handler may charge what it builds from the body to it. Released when the
    /// handler completes. nil for requests built by hand.
    public var bodyAccount: HTTPBodyAccount?
    /// Uptime (`DispatchTime` nanoseconds) at which the server had the complete head, before the
    /// head policy ran and the body was read; 0 for requests built by hand.
    public var headReceivedAt: UInt64 = 0

    /// Builds a request; `path` and `query` are derived from `target`.
    public init(method: String = "GET", target: String = "/", versionMinor: Int = 1,
                headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], remoteAddress: String = "") {
        self.method = method
        self.target = target
        let (path, query) = Self.split(target: target)
        self.path = path
        self.query = query
        self.versionMinor = versionMinor
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }

    /// Whether the client asked to keep the connection open after this request
    /// (HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`).
    public var wantsKeepAlive: Bool {
        var close = false, keepAlive = false
        for value in headers.values(for: "Connection") {
            for token in value.split(separator: ",") {
                let t = token.trimmingASCIIWhitespace().lowercased()
                if t == "close" { close = true } else if t == "keep-alive" { keepAlive = true }
            }
        }
        if close { return false }
        return versionMinor >= 1 || keepAlive
    }

    /// Splits a request-target into path and query.
    static func split(target: String) -> (String, String?) {
        var rest = Substring(target)
        // absolute-form: drop "scheme://authority"
        if !rest.hasPrefix("/"), let schemeEnd = rest.range(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            if scheme == "http" || scheme == "https" {
                rest = rest[schemeEnd.upperBound...]
                if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
                    rest = rest[slash...]
                } else {
                    rest = ""
                }
                if !rest.hasPrefix("/") { rest = "/" + rest }
            }
        }
        if let q = rest.firstIndex(of: "?") {
            return (String(rest[..<q]), String(rest[rest.index(after: q)...]))
        }
        return (String(rest), nil)
    }
}

extension StringProtocol {
    /// Drops leading and trailing spaces and tabs.
    func trimmingASCIIWhitespace() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
