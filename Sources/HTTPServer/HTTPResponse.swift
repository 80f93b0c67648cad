import Foundation
import SparseJSON

/// A complete response produced by a handler (or by the server for protocol errors).
///
/// The server adds `Content-Length`, `Date`, `Server` and `Connection` when writing it.
public struct HTTPResponse: Sendable {
    /// Status code, e.g. 200.
    public var status: Int
    /// Header fields; framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`) are managed by the server.
    public var headers: HTTPHeaders
    /// The body bytes.
    public var body: [UInt8]
    /// Smallest body compressed when the client accepts gzip/deflate: nil = the server's
    /// `HTTPServerConfiguration.compressionMinimumBytes`, `Int.max` = never compress this response
    /// (e.g. a per-endpoint setting). Responses that already carry `Content-Encoding` are sent as is.
    public var compressionMinimumBytes: Int?
    /// Extra fields of the server's request log line for this response (e.g. `trace_id`).
    public var logMetadata: [String: String] = [:]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response carrying `jsonBytes` with `Content-Type: application/json`.
    public static func json(status: Int, _ jsonBytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: HTTPHeaders([("Content-Type", "application/json")]), body: jsonBytes)
    }

    /// `{"error": "<message>"}` with `Content-Type: application/json` (no charset parameter).
    public static func error(status: Int, _ message: String) -> HTTPResponse {
        var writer = JSONWriter(reservingCapacity: message.utf8.count + 12)
        writer.raw("{\"error\":")
        writer.string(message)
        writer.raw("}")
        return json(status: status, writer.bytes)
    }

    /// Serializes status line, headers and (unless `omitBody`) body.
    ///
    /// - Parameters:
    ///   - omitBody: true for HEAD responses; the handler's `Content-Length` is then kept if given.
    ///   - connection: `Connection` value to send ("close", "keep-alive") or nil for none.
    func serialized(omitBody: Bool, connection: String?, date: String, serverName: String) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(HTTPStatus.reasonPhrase(status))\r\n"
        let bodyless = HTTPStatus.forbidsBody(status)
        var handlerLength: String?
        var hasServer = false
        for (name, value) in headers {
            if HTTPHeaders.namesEqual(name, "Content-Length") { handlerLength = value; continue }
            if HTTPHeaders.namesEqual(name, "Transfer-Encoding") || HTTPHeaders.namesEqual(name, "Connection")
                || HTTPHeaders.namesEqual(name, "Date") { continue }
            guard Self.isSafeHeader(name: name, value: value) else { continue }
            if HTTPHeaders.namesEqual(name, "Server") { hasServer = true }
            head += "\(name): \(value)\r\n"
        }
        if !bodyless {
            if omitBody, let given = handlerLength, !given.isEmpty, given.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                head += "Content-Length: \(given)\r\n"
            } else {
                head += "Content-Length: \(body.count)\r\n"
            }
        }
        head += "Date: \(date)\r\n"
        if !hasServer { head += "Server: \(serverName)\r\n" }
        if let connection { head += "Connection: \(connection)\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if !omitBody && !bodyless { bytes += body }
        return bytes
    }

    /// Rejects names that are not tokens and values with CR, LF, NUL or other controls (response splitting).
    static func isSafeHeader(name: String, value: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(HTTPRequestParser.isTokenByte)
            && value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}
