import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The exporter's HTTP/1.1 client: `POST` of protobuf bodies to the collector's `/v1/traces` over
/// one keep-alive connection on a blocking socket (TLS through the system OpenSSL for `https`,
/// verifying the collector's certificate and host name). Used from the exporter thread only.
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (ms) bounds connecting, sending and the answer;
/// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k=v`) adds headers, e.g. a collector's credentials;
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` names a PEM file of CAs to trust instead of the system's.
final class OTLPHTTPClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    let host: String, port: UInt16, path: String, useTLS: Bool
    let timeout: Double
    private let head: [UInt8]
    private var connection: Connection?
    private let tls: OpaquePointer?

    init(url: String, environment env: [String: String]) throws {
        guard let parts = URLComponents(string: url), let host = parts.host, let scheme = parts.scheme?.lowercased() else {
            throw Failure("'\(url)' is not an http(s) URL")
        }
        useTLS = scheme == "https"
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        port = UInt16(clamping: parts.port ?? (useTLS ? 443 : 80))
        path = parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath
        let ms = (env["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] ?? env["OTEL_EXPORTER_OTLP_TIMEOUT"]).flatMap(Double.init) ?? 10_000
        timeout = min(max(ms, 1), 600_000) / 1000
        var text = "POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/x-protobuf\r\n"
        text += "User-Agent: sparse-serve/\(InferenceService.version)\r\n"
        for (k, v) in Self.headers(env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] ?? env["OTEL_EXPORTER_OTLP_HEADERS"] ?? "") {
            text += "\(k): \(v)\r\n"
        }
        head = Array(text.utf8)
        tls = useTLS ? try Self.clientContext(caFile: env["OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"] ?? env["OTEL_EXPORTER_OTLP_CERTIFICATE"]) : nil
    }

    deinit {
        close()
        if let tls { SSL_CTX_free(tls) }
    }

    /// `k=v,k=v` with percent-encoded values; pairs with a bad name or a line break are skipped.
    static func headers(_ text: String) -> [(String, String)] {
        text.split(separator: ",").compactMap { pair in
            let kv = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty, kv[0].utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else { return nil }
            let value = kv[1].removingPercentEncoding ?? kv[1]
            guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else { return nil }
            return (kv[0], value)
        }
    }

    /// Posts `body`; throws unless the collector answers 2xx. A kept-alive connection the
    /// collector closed meanwhile is replaced once.
    func post(_ body: [UInt8]) throws {
        try body.withUnsafeBytes { try post([$0]) }
    }

    /// Posts the concatenation of `parts` as the body (sent as they lie in memory, not copied together).
    func post(_ parts: [UnsafeRawBufferPointer]) throws {
        let reused = connection != nil
        do {
            try attempt(parts)
        } catch let error as Failure where reused && error.description.hasPrefix("connection closed") {
            close()
            try attempt(parts)
        } catch {
            close()
            throw error
        }
    }

    private func attempt(_ parts: [UnsafeRawBufferPointer]) throws {
        let c = try connection ?? Connection(host: host, port: port, timeout: timeout, tls: tls)
        connection = c
        var request = head
        request += "Content-Length: \(parts.reduce(0) { $0 + $1.count })\r\n\r\n".utf8
        try request.withUnsafeBytes { try c.write([$0] + parts) }
        var reader = HTTPResponseReader(connection: c)
        let response = try reader.read()
        if response.close { close() }
        guard (200..<300).contains(response.status) else { throw Failure("the collector answered \(response.status)") }
    }

    func close() {
        connection?.close()
        connection = nil
    }

    private static func clientContext(caFile: String?) throws -> OpaquePointer {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw Failure("cannot create a TLS context") }
        _ = cssl_ctx_set_min_tls12(ctx)
        let loaded = caFile.map { SSL_CTX_load_verify_locations(ctx, $0, nil) } ?? SSL_CTX_set_default_verify_paths(ctx)
        guard loaded == 1 else {
            SSL_CTX_free(ctx)
            throw Failure("cannot load the CA certificates\(caFile.map { " of \($0)" } ?? "")")
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        return ctx
    }
}

/// One TCP (and maybe TLS) connection with send and receive timeouts.
final class Connection {
    private var fd: Int32
    private var ssl: OpaquePointer?

    init(host: String, port: UInt16, timeout: Double, tls: OpaquePointer?) throws {
        fd = try Self.connect(host: host, port: port, timeout: timeout)
        guard let tls else { return }
        guard let ssl = SSL_new(tls) else { Glibc.close(fd); throw OTLPHTTPClient.Failure("cannot create a TLS session") }
        self.ssl = ssl
        _ = SSL_set_fd(ssl, fd)
        _ = cssl_set_sni(ssl, host)
        _ = SSL_set1_host(ssl, host)
        guard SSL_connect(ssl) == 1 else {
            let reason = Self.sslError()
            close()
            throw OTLPHTTPClient.Failure("TLS handshake with \(host):\(port) failed: \(reason)")
        }
    }

    private static func connect(host: String, port: UInt16, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw OTLPHTTPClient.Failure("cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let a = next {
            next = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            if connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen, timeout: timeout) {
                var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            lastError = String(cString: strerror(errno))
            Glibc.close(fd)
        }
        throw OTLPHTTPClient.Failure("cannot connect to \(host):\(port): \(lastError)")
    }

    /// A nonblocking connect waited for with `poll`, then the socket back in blocking mode.
    private static func connect(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, timeout: Double) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, address, length) == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { errno = ETIMEDOUT; return false }
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
        errno = error
        return error == 0
    }

    private static func sslError() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return "\(String(cString: strerror(errno)))" }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        return String(cString: text)
    }

    /// Sends `parts` one after the other: on plain TCP with `sendmsg` (one system call for all of
    /// them when the socket takes it), over TLS a record per part.
    func write(_ parts: [UnsafeRawBufferPointer]) throws {
        var parts = parts.filter { $0.count > 0 }[...], sent = 0
        while let first = parts.first {
            let n: Int
            if let ssl {
                n = Int(SSL_write(ssl, first.baseAddress!, Int32(min(first.count, 1 << 20))))
            } else {
                n = Self.sendmsg(fd, parts)
            }
            if n > 0 {
                sent += n
                var left = n
                while left > 0, let part = parts.first {  // drop what went, keep the rest of a part
                    if part.count <= left { left -= part.count; parts.removeFirst() } else {
                        parts[parts.startIndex] = UnsafeRawBufferPointer(rebasing: part[left...])
                        left = 0
                    }
                }
                continue
            }
            if n < 0 && errno == EINTR && ssl == nil { continue }
            throw OTLPHTTPClient.Failure(sent == 0 ? "connection closed before the request was sent" : "send failed: \(String(cString: strerror(errno)))")
        }
    }

    private static func sendmsg(_ fd: Int32, _ parts: ArraySlice<UnsafeRawBufferPointer>) -> Int {
        var vectors = parts.prefix(16).map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        return vectors.withUnsafeMutableBufferPointer { v in
            var message = msghdr()
            message.msg_iov = v.baseAddress
            message.msg_iovlen = v.count
            return Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
        }
    }

    /// Reads into `buffer`; 0 at the end of the stream. A timeout or error throws.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = ssl.map { Int(SSL_read($0, buffer.baseAddress, Int32(clamping: buffer.count))) }
                ?? recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if errno == EINTR && ssl == nil { continue }
            if let ssl, SSL_get_error(ssl, Int32(n)) == SSL_ERROR_ZERO_RETURN { return 0 }
            throw OTLPHTTPClient.Failure(errno == EAGAIN || errno == EWOULDBLOCK ? "the collector did not answer in time" : "receive failed: \(String(cString: strerror(errno)))")
        }
    }

    func close() {
        if let ssl {
            SSL_free(ssl)
            self.ssl = nil
        }
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// Reads one HTTP/1.1 response: the status, whether the connection closes, and the body
/// (Content-Length, chunked, or up to the end of the stream), which is discarded.
struct HTTPResponseReader {
    let connection: Connection
    private var buffer: [UInt8] = []
    static let maxHead = 16 << 10, maxBody = 1 << 20

    init(connection: Connection) { self.connection = connection }

    mutating func read() throws -> (status: Int, close: Bool) {
        var headEnd: Int?
        while headEnd == nil {
            guard try fill() else { throw OTLPHTTPClient.Failure("connection closed before an answer") }
            headEnd = Self.end(of: [13, 10, 13, 10], in: buffer)
            if headEnd == nil && buffer.count > Self.maxHead { throw OTLPHTTPClient.Failure("the collector's answer head is too long") }
        }
        let head = Array(buffer[..<headEnd!])
        buffer.removeFirst(headEnd!)
        let lines = Self.lines(head)
        let first = lines.first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let fields = first.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/1."), let status = Int(fields[1]) else {
            throw OTLPHTTPClient.Failure("the collector's answer is not HTTP/1.x")
        }
        var length: Int?, chunked = false, close = fields[0] == "HTTP/1.0"
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            guard name == "content-length" || name == "transfer-encoding" || name == "connection" else { continue }
            let value = Self.trimmed(Substring(String(decoding: line[(colon + 1)...], as: UTF8.self))).lowercased()
            if name == "content-length" { length = Int(value) }
            if name == "transfer-encoding" { chunked = value.contains("chunked") }
            if name == "connection" { close = value.contains("close") ? true : value.contains("keep-alive") ? false : close }
        }
        if chunked {
            try skipChunks()
        } else if let length {
            guard length <= Self.maxBody else { throw OTLPHTTPClient.Failure("the collector's answer is too long") }
            while buffer.count < length { guard try fill() else { throw OTLPHTTPClient.Failure("connection closed inside the answer") } }
        } else if !(100..<200).contains(status) && status != 204 && status != 304 {
            while try fill() { if buffer.count > Self.maxBody { break } }
            close = true
        }
        return (status, close)
    }

    /// The CRLF-separated lines of a response head, empty ones left out.
    static func lines(_ head: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = [], start = 0
        for i in head.indices where head[i] == 10 {
            let end = i > start && head[i - 1] == 13 ? i - 1 : i
            if end > start { out.append(head[start..<end]) }
            start = i + 1
        }
        if start < head.count { out.append(head[start...]) }
        return out
    }

    /// `text` without leading and trailing spaces and tabs.
    static func trimmed(_ text: Substring) -> Substring {
        var t = text
        while let c = t.first, c == " " || c == "\t" { t.removeFirst() }
        while let c = t.last, c == " " || c == "\t" { t.removeLast() }
        return t
    }

    private mutating func skipChunks() throws {
        var total = 0
        while true {
            while Self.end(of: [13, 10], in: buffer) == nil { guard try fill() else { throw OTLPHTTPClient.Failure("connection closed inside the answer") } }
            let end = Self.end(of: [13, 10], in: buffer)!
            let lineEnd = (end - 2)..<end
            let sizeText = String(decoding: buffer[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw OTLPHTTPClient.Failure("the collector's chunked answer is malformed")
            }
            buffer.removeFirst(lineEnd.upperBound)
            total += size
            guard total <= Self.maxBody else { throw OTLPHTTPClient.Failure("the collector's answer is too long") }
            while buffer.count < size + 2 { guard try fill() else { throw OTLPHTTPClient.Failure("connection closed inside the answer") } }
            buffer.removeFirst(size + 2)
            if size == 0 { return }  // (trailers are not expected from a collector)
        }
    }

    /// Appends what the connection has; false at the end of the stream.
    private mutating func fill() throws -> Bool {
        let n = try withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { chunk in
            let n = try connection.read(into: chunk)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[..<n]))
            return n
        }
        return n > 0
    }

    /// The index just past the first occurrence of `pattern` in `bytes`.
    static func end(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        return bytes.withUnsafeBufferPointer { b in
            for i in 0...(b.count - pattern.count) where b[i] == pattern[0] {
                var j = 1
                while j < pattern.count && b[i + j] == pattern[j] { j += 1 }
                if j == pattern.count { return i + j }
            }
            return nil
        }
    }
}
