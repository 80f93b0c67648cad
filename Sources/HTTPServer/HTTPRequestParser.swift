import Dispatch

/// A protocol violation found by `HTTPRequestParser`. The connection answers with `status`
/// (a JSON error carrying `message`) and closes.
package struct HTTPParseError: Error, Equatable, Sendable {
    package let status: Int
    package let message: String
}

/// Limits the parser enforces.
package struct HTTPParserLimits: Sendable {
    package var maxRequestLineBytes = 8192
    package var maxHeaderBytes = 65536
    package var maxHeaderCount = 100
    /// Longest chunk-size line (size, extensions) accepted.
    var maxChunkLineBytes = 4096

    package init() {}

    init(_ configuration: HTTPServerConfiguration) {
        maxRequestLineBytes = configuration.maxRequestLineBytes
        maxHeaderBytes = configuration.maxHeaderBytes
        maxHeaderCount = configuration.maxHeaderCount
    }
}

/// Incremental, socket-free HTTP/1.x request parser (RFC 9112), one request at a time.
///
/// Feed bytes with `append(_:)` and call `next()` until it returns `.needMore`. Bytes after a complete
/// request stay buffered for the following `next()` (pipelining). Choices where the RFC leaves room:
/// - lines must end in CRLF; a bare LF or bare CR anywhere in the head, chunk lines or trailers → 400;
/// - up to 8 empty lines before a request line are skipped;
/// - HTTP/1.1 requests without exactly one `Host` field → 400;
/// - `Transfer-Encoding` whose last coding is not `chunked` (or `chunked` twice) → 400; other codings before
///   a final `chunked` → 501; any `Transfer-Encoding` with `Content-Length`, or in HTTP/1.0 → 400;
/// - more than one `Content-Length` field (even equal), comma lists, or anything but 1-18 digits → 400;
/// - `Expect` other than `100-continue` on HTTP/1.1 → 417 (HTTP/1.0 expectations are ignored).
package struct HTTPRequestParser {
    /// What `next()` found.
    package enum Event: Equatable {
        /// The buffered bytes do not complete the current step.
        case needMore
        /// The head is valid and accepted; the body (if any) follows. `expectsContinue` asks for `100 Continue`.
        case headComplete(expectsContinue: Bool)
        /// A complete request.
        case request(HTTPRequest)
        /// Fatal protocol error; the parser stays failed.
        case failure(HTTPParseError)
        /// The head policy refused the request before its body was read: send this and close.
        case rejected(HTTPResponse)

        package static func == (a: Event, b: Event) -> Bool {
            switch (a, b) {
            case (.needMore, .needMore): return true
            case let (.headComplete(x), .headComplete(y)): return x == y
            case let (.failure(x), .failure(y)): return x == y
            case let (.rejected(x), .rejected(y)): return x.status == y.status && x.body == y.body
            case let (.request(x), .request(y)): return x.method == y.method && x.target == y.target && x.body == y.body
            default: return false
            }
        }
    }

    private enum State {
        case requestLine
        case headers
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case complete
        case failed(HTTPParseError)
    }

    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A
    private static let maxSkippedEmptyLines = 8
    static let overBudgetMessage = "the server is holding too many request bodies in memory; retry later"

    let limits: HTTPParserLimits
    private let headPolicy: HTTPHeadPolicy
    private let reserveBody: (Int) -> Bool

    private var state = State.requestLine
    private var buffer: [UInt8] = []
    private var position = 0
    private var scanFrom = 0
    private var skippedEmptyLines = 0
    private var headerBytes = 0
    private var headerCount = 0
    private var request = HTTPRequest()
    private var bodyCap = 0

    package init(limits: HTTPParserLimits, bodyLimit: @escaping @Sendable (_ method: String, _ path: String) -> Int) {
        self.init(limits: limits, headPolicy: { .accept(maxBodyBytes: bodyLimit($0.method, $0.path)) })
    }

    /// - Parameters:
    ///   - headPolicy: decides from each complete head whether its body is read, and up to what size.
    ///   - reserveBody: called with each declared body size (Content-Length, or each chunk) before
    ///     those bytes are read; false → 503 (the body memory budget is exhausted).
    init(limits: HTTPParserLimits, headPolicy: @escaping HTTPHeadPolicy,
         reserveBody: @escaping (Int) -> Bool = { _ in true }) {
        self.limits = limits
        self.headPolicy = headPolicy
        self.reserveBody = reserveBody
    }

    /// Bytes received but not yet consumed by a request.
    var bufferedByteCount: Int { buffer.count - position }

    /// Whether part of a request has been received (or anything is buffered).
    var hasPartialRequest: Bool {
        if case .requestLine = state { return position < buffer.count || skippedEmptyLines > 0 }
        return true
    }

    /// Adds received bytes.
    package mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    /// Adds received bytes from raw memory.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes.bindMemory(to: UInt8.self))
    }

    /// Advances as far as the buffered bytes allow.
    package mutating func next() -> Event {
        while true {
            switch step() {
            case .continue: continue
            case .event(let event): return event
            }
        }
    }

    private enum Step { case `continue`, event(Event) }

    private mutating func fail(_ status: Int, _ message: String) -> Step {
        let error = HTTPParseError(status: status, message: message)
        state = .failed(error)
        return .event(.failure(error))
    }

    private mutating func step() -> Step {
        switch state {
        case .failed(let error):
            return .event(.failure(error))

        case .requestLine:
            while skippedEmptyLines < Self.maxSkippedEmptyLines, buffer.count - position >= 2,
                  buffer[position] == Self.cr, buffer[position + 1] == Self.lf {
                position += 2
                skippedEmptyLines += 1
            }
            switch findLine(limit: limits.maxRequestLineBytes) {
            case .incomplete: return .event(.needMore)
            case .tooLong:
                return fail(414, "request line exceeds \(limits.maxRequestLineBytes) bytes")
            case .invalid(let message): return fail(400, message)
            case .line(let range):
                if let error = parseRequestLine(range) { return fail(error.status, error.message) }
                state = .headers
                headerBytes = 0
                headerCount = 0
                return .continue
            }

        case .headers:
            let budget = limits.maxHeaderBytes - headerBytes
            switch findLine(limit: budget - 2) {
            case .incomplete: return .event(.needMore)
            case .tooLong:
                return fail(431, "header section exceeds \(limits.maxHeaderBytes) bytes")
            case .invalid(let message): return fail(400, message)
            case .line(let range):
                headerBytes += range.count + 2
                if range.isEmpty { return finishHead() }
                headerCount += 1
                if headerCount > limits.maxHeaderCount {
                    return fail(431, "more than \(limits.maxHeaderCount) header fields")
                }
                switch parseField(range) {
                case .success(let field): request.headers.add(name: field.0, value: field.1)
                case .failure(let error): return fail(error.status, error.message)
                }
                return .continue
            }

        case .fixedBody(let remaining):
            let take = min(remaining, buffer.count - position)
            if take > 0 {
                request.body.append(contentsOf: buffer[position ..< position + take])
                position += take
            }
            if remaining - take == 0 {
                state = .complete
                return .continue
            }
            state = .fixedBody(remaining: remaining - take)
            return .event(.needMore)

        case .chunkSize:
            switch findLine(limit: limits.maxChunkLineBytes) {
            case .incomplete: return .event(.needMore)
            case .tooLong: return fail(400, "chunk size line exceeds \(limits.maxChunkLineBytes) bytes")
            case .invalid(let message): return fail(400, message)
            case .line(let range):
                guard let size = parseChunkSize(range) else { return fail(400, "invalid chunk size line") }
                if size > bodyCap - request.body.count {
                    return fail(413, "request body exceeds the limit of \(bodyCap) bytes")
                }
                if !reserveBody(size) { return fail(503, Self.overBudgetMessage) }
                if size == 0 {
                    headerBytes = 0
                    headerCount = 0
                    state = .trailers
                } else {
                    request.body.reserveCapacity(request.body.count + min(size, 1 << 20))
                    state = .chunkData(remaining: size)
                }
                return .continue
            }

        case .chunkData(let remaining):
            let take = min(remaining, buffer.count - position)
            if take > 0 {
                request.body.append(contentsOf: buffer[position ..< position + take])
                position += take
            }
            if remaining - take == 0 {
                state = .chunkDataEnd
                return .continue
            }
            state = .chunkData(remaining: remaining - take)
            return .event(.needMore)

        case .chunkDataEnd:
            guard buffer.count - position >= 2 else {
                if position < buffer.count, buffer[position] != Self.cr {
                    return fail(400, "chunk data not followed by CRLF")
                }
                return .event(.needMore)
            }
            guard buffer[position] == Self.cr, buffer[position + 1] == Self.lf else {
                return fail(400, "chunk data not followed by CRLF")
            }
            position += 2
            scanFrom = position
            state = .chunkSize
            return .continue

        case .trailers:
            let budget = limits.maxHeaderBytes - headerBytes
            switch findLine(limit: budget - 2) {
            case .incomplete: return .event(.needMore)
            case .tooLong: return fail(431, "trailer section exceeds \(limits.maxHeaderBytes) bytes")
            case .invalid(let message): return fail(400, message)
            case .line(let range):
                headerBytes += range.count + 2
                if range.isEmpty {
                    state = .complete
                    return .continue
                }
                headerCount += 1
                if headerCount > limits.maxHeaderCount {
                    return fail(431, "more than \(limits.maxHeaderCount) trailer fields")
                }
                if case .failure(let error) = parseField(range) { return fail(error.status, error.message) }
                return .continue // trailers are validated, then dropped
            }

        case .complete:
            let finished = request
            reset()
            return .event(.request(finished))
        }
    }

    private mutating func reset() {
        state = .requestLine
        request = HTTPRequest()
        skippedEmptyLines = 0
        headerBytes = 0
        headerCount = 0
        bodyCap = 0
        scanFrom = position
        compactIfUseful()
    }

    private mutating func compactIfUseful() {
        guard position > 0 else { return }
        if position == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
        } else if position >= 1 << 16 || position * 2 >= buffer.count {
            buffer.removeSubrange(0 ..< position)
        } else {
            return
        }
        scanFrom = max(0, scanFrom - position)
        position = 0
    }

    // MARK: - Lines

    private enum LineResult {
        case incomplete
        case tooLong
        case invalid(String)
        /// The line's content, CRLF excluded; `position` already moved past the CRLF.
        case line(Range<Int>)
    }

    /// Finds the next CRLF-terminated line starting at `position`, rejecting bare CR and bare LF.
    private mutating func findLine(limit: Int) -> LineResult {
        var i = max(scanFrom, position)
        let end = buffer.count
        while i < end {
            let byte = buffer[i]
            if byte == Self.lf {
                guard i > position, buffer[i - 1] == Self.cr else { return .invalid("line ends in a bare LF; CRLF is required") }
                let range = position ..< (i - 1)
                if range.count > limit { return .tooLong }
                position = i + 1
                scanFrom = position
                return .line(range)
            }
            if byte == Self.cr, i + 1 < end, buffer[i + 1] != Self.lf {
                return .invalid("bare CR in the message head")
            }
            i += 1
        }
        // Re-examine a trailing CR when more bytes arrive.
        scanFrom = (end > position && buffer[end - 1] == Self.cr) ? end - 1 : end
        let pending = end - position - ((end > position && buffer[end - 1] == Self.cr) ? 1 : 0)
        if pending > limit { return .tooLong }
        return .incomplete
    }

    // MARK: - Request line and fields

    private mutating func parseRequestLine(_ range: Range<Int>) -> HTTPParseError? {
        if range.isEmpty { return HTTPParseError(status: 400, message: "empty request line") }
        let line = buffer[range]
        guard let sp1 = line.firstIndex(of: 0x20) else {
            return HTTPParseError(status: 400, message: "malformed request line")
        }
        let methodBytes = line[line.startIndex ..< sp1]
        let rest = line[(sp1 + 1)...]
        guard let sp2 = rest.firstIndex(of: 0x20) else {
            return HTTPParseError(status: 400, message: "malformed request line")
        }
        let targetBytes = rest[rest.startIndex ..< sp2]
        let versionBytes = rest[(sp2 + 1)...]
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(Self.isTokenByte) else {
            return HTTPParseError(status: 400, message: "invalid method")
        }
        guard !targetBytes.isEmpty, targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return HTTPParseError(status: 400, message: "invalid request target")
        }
        // RFC 9112 §3.2: origin-form ("/path"), absolute-form ("http(s)://…"), asterisk-form only
        // for OPTIONS, authority-form only for CONNECT. Anything else is not a request target.
        let lowered = targetBytes.prefix(8).map(HTTPHeaders.asciiLower)
        let isAbsolute = lowered.starts(with: Array("http://".utf8)) || lowered.starts(with: Array("https://".utf8))
        let method = Array(methodBytes)
        let isAsterisk = targetBytes.count == 1 && targetBytes.first == 0x2A && method == Array("OPTIONS".utf8)
        guard targetBytes.first == 0x2F || isAbsolute || isAsterisk || method == Array("CONNECT".utf8) else {
            return HTTPParseError(status: 400, message: "request target must be a path, an absolute http(s) URI, or * for OPTIONS")
        }
        guard versionBytes.count == 8, versionBytes.starts(with: Array("HTTP/".utf8)) else {
            return HTTPParseError(status: 400, message: "malformed HTTP version")
        }
        let v = Array(versionBytes)
        guard Self.isDigit(v[5]), v[6] == 0x2E, Self.isDigit(v[7]) else {
            return HTTPParseError(status: 400, message: "malformed HTTP version")
        }
        guard v[5] == 0x31, v[7] == 0x30 || v[7] == 0x31 else {
            return HTTPParseError(status: 505, message: "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        request = HTTPRequest(method: String(decoding: methodBytes, as: UTF8.self),
                              target: String(decoding: targetBytes, as: UTF8.self),
                              versionMinor: Int(v[7] - 0x30))
        return nil
    }

    private func parseField(_ range: Range<Int>) -> Result<(String, String), HTTPParseError> {
        let line = buffer[range]
        if let first = line.first, first == 0x20 || first == 0x09 {
            return .failure(HTTPParseError(status: 400, message: "header line starts with whitespace (obs-fold is not accepted)"))
        }
        guard let colon = line.firstIndex(of: 0x3A) else {
            return .failure(HTTPParseError(status: 400, message: "header line without a colon"))
        }
        let name = line[line.startIndex ..< colon]
        guard !name.isEmpty, name.allSatisfy(Self.isTokenByte) else {
            return .failure(HTTPParseError(status: 400, message: "invalid header field name"))
        }
        var value = line[(colon + 1)...]
        while let f = value.first, f == 0x20 || f == 0x09 { value = value.dropFirst() }
        while let l = value.last, l == 0x20 || l == 0x09 { value = value.dropLast() }
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            return .failure(HTTPParseError(status: 400, message: "control character in a header value"))
        }
        return .success((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
    }

    /// Validates framing, Host and Expect, applies the body cap, and chooses the body state.
    private mutating func finishHead() -> Step {
        request.headReceivedAt = DispatchTime.now().uptimeNanoseconds
        let headers = request.headers
        let hosts = headers.values(for: "Host")
        if hosts.count > 1 { return fail(400, "more than one Host header") }
        if request.versionMinor == 1 && hosts.isEmpty { return fail(400, "missing Host header") }

        let transferEncodings = headers.values(for: "Transfer-Encoding")
        let contentLengths = headers.values(for: "Content-Length")
        var chunked = false
        var contentLength = 0
        if !transferEncodings.isEmpty {
            if !contentLengths.isEmpty { return fail(400, "both Content-Length and Transfer-Encoding are present") }
            if request.versionMinor == 0 { return fail(400, "Transfer-Encoding is not allowed in HTTP/1.0") }
            let codings = transferEncodings.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
                .map { $0.trimmingASCIIWhitespace().lowercased() }
            if codings.contains(where: \.isEmpty) { return fail(400, "empty transfer coding") }
            guard codings.last == "chunked" else { return fail(400, "Transfer-Encoding must end with chunked") }
            if codings.count > 1 {
                if codings.dropLast().contains("chunked") { return fail(400, "chunked applied more than once") }
                return fail(501, "unsupported transfer coding; only chunked is implemented")
            }
            chunked = true
        } else if !contentLengths.isEmpty {
            if contentLengths.count > 1 { return fail(400, "more than one Content-Length header") }
            guard let length = Self.parseContentLength(contentLengths[0]) else {
                return fail(400, "invalid Content-Length")
            }
            contentLength = length
        }

        switch headPolicy(request) {
        case .reject(let response):
            state = .failed(HTTPParseError(status: response.status, message: "request refused from its headers"))
            return .event(.rejected(response))
        case .accept(let maxBodyBytes):
            bodyCap = maxBodyBytes
        }
        if contentLength > bodyCap {
            return fail(413, "request body of \(contentLength) bytes exceeds the limit of \(bodyCap) bytes")
        }
        if !reserveBody(contentLength) { return fail(503, Self.overBudgetMessage) }

        var expectsContinue = false
        if request.versionMinor >= 1 {
            let expectations = headers.values(for: "Expect")
            if !expectations.isEmpty {
                guard expectations.count == 1, expectations[0].lowercased() == "100-continue" else {
                    return fail(417, "unsupported expectation; only 100-continue is accepted")
                }
                expectsContinue = chunked || contentLength > 0
            }
        }

        if chunked {
            state = .chunkSize
        } else if contentLength > 0 {
            request.body.reserveCapacity(min(contentLength, 1 << 20))
            state = .fixedBody(remaining: contentLength)
        } else {
            state = .complete
        }
        return .event(.headComplete(expectsContinue: expectsContinue))
    }

    /// 1 to 18 ASCII digits, nothing else.
    static func parseContentLength(_ text: String) -> Int? {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy(isDigit) else { return nil }
        return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    /// `1*HEXDIG [ BWS ";" extensions ]`; at most 16 hex digits.
    private func parseChunkSize(_ range: Range<Int>) -> Int? {
        let line = buffer[range]
        var index = line.startIndex
        var size = 0
        var digits = 0
        while index < line.endIndex, let nibble = Self.hexValue(line[index]) {
            digits += 1
            if digits > 16 { return nil }
            let (shifted, overflow) = size.multipliedReportingOverflow(by: 16)
            if overflow { return nil }
            size = shifted + nibble
            if size < 0 { return nil }
            index += 1
        }
        guard digits > 0 else { return nil }
        var rest = line[index...]
        while let f = rest.first, f == 0x20 || f == 0x09 { rest = rest.dropFirst() }
        if rest.isEmpty { return index == line.endIndex ? size : nil }
        guard rest.first == 0x3B else { return nil }
        guard rest.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        return size
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30 ... 0x39: return Int(byte - 0x30)
        case 0x41 ... 0x46: return Int(byte - 0x41 + 10)
        case 0x61 ... 0x66: return Int(byte - 0x61 + 10)
        default: return nil
        }
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30 ... 0x39, 0x41 ... 0x5A, 0x61 ... 0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }
}
