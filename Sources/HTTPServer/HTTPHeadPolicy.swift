/// What the application decides about a request once its head (method, target, headers) has
/// arrived and before a single body byte is read, inflated or handed to a handler.
public enum HTTPHeadDecision: Sendable {
    /// Read the body, up to `maxBodyBytes` (raw, and again once decoded); larger → 413 and close.
    case accept(maxBodyBytes: Int)
    /// Answer `response` and close the connection without reading the body (e.g. 401 when the
    /// API key in the headers is missing or wrong). Unread body bytes are drained and discarded
    /// for a short while so the answer is not lost to a TCP reset, then the connection closes.
    case reject(HTTPResponse)
}

/// Called on the connection's I/O queue with the request head (`body` empty, `remoteAddress`
/// set) as soon as the header section is complete and framing is valid. Must be fast and must
/// not block: it decides from the head alone (authentication, routing, per-route body limits).
public typealias HTTPHeadPolicy = @Sendable (HTTPRequest) -> HTTPHeadDecision
