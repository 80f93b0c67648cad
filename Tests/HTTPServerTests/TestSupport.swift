import Foundation
import Logging
import XCTest
@testable import HTTPServer
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A response as read by `TestClient`.
struct TestResponse {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Blocking POSIX client with a receive timeout, so a test can never hang on a read.
/// Subclasses (the TLS client) replace `transmit` and `receive`.
class TestClient {
    private(set) var fd: Int32
    private var buffer: [UInt8] = []

    /// - Parameter source: local IPv4 address to connect from (another loopback address such as
    ///   127.0.0.2 stands for a second client); nil = chosen by the kernel.
    init(port: Int, timeout: Double = 3, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError("socket failed") }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { Glibc.close(fd); throw HTTPServerError("bind to \(source) failed") }
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw HTTPServerError("connect failed: \(e)")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { transmit($0) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Sends some of `bytes`; returns how many, or ≤ 0 on error.
    func transmit(_ bytes: UnsafeRawBufferPointer) -> Int {
        Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
    }

    /// Receives into `buffer`; returns the byte count, 0 on EOF, < 0 on error or timeout.
    func receive(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        recv(fd, buffer.baseAddress, buffer.count, 0)
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads more bytes into the buffer; false on EOF, error or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { receive($0) }
        guard n > 0 else { return false }
        buffer += chunk[0 ..< n]
        return true
    }

    /// Reads one response (interim 1xx responses are returned like any other).
    func readResponse(isHead: Bool = false) -> TestResponse? {
        var headEnd: Int?
        while true {
            if let range = findCRLFCRLF() { headEnd = range; break }
            if !fill() { return nil }
        }
        guard let end = headEnd else { return nil }
        let headText = String(decoding: buffer[0 ..< end], as: UTF8.self)
        buffer.removeSubrange(0 ..< end + 4)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(name: String(line[..<colon]), value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var body: [UInt8] = []
        if !isHead, !(100 ..< 200).contains(status), status != 204, status != 304 {
            let length = Int(headers["Content-Length"] ?? "0") ?? 0
            while buffer.count < length { if !fill() { return nil } }
            body = Array(buffer[0 ..< length])
            buffer.removeSubrange(0 ..< length)
        }
        return TestResponse(status: status, headers: headers, body: body)
    }

    private func findCRLFCRLF() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0 ... buffer.count - 4
        where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// Bytes still buffered (already received but not consumed by `readResponse`).
    var pendingBytes: Int { buffer.count }

    /// True when the server closed the connection (EOF or reset) before the receive timeout.
    func waitForClose() -> Bool {
        if !buffer.isEmpty { return false }
        var byte: UInt8 = 0
        let n = withUnsafeMutableBytes(of: &byte) { receive($0) }
        if n == 0 { return true }
        if n < 0 { return errno == ECONNRESET }
        buffer.append(byte)
        return false
    }
}

/// Captures log messages for assertions.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(Logger.Level, String)] = []

    func append(_ level: Logger.Level, _ message: String) {
        lock.lock(); entries.append((level, message)); lock.unlock()
    }

    var messages: [(Logger.Level, String)] {
        lock.lock(); defer { lock.unlock() }
        return entries
    }

    func makeLogger() -> Logger {
        Logger(label: "http-test") { _ in CaptureHandler(capture: self) }
    }

    struct CaptureHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.append(event.level, "\(event.message)")
        }
    }
}

/// Echo handler used by the socket tests:
/// - echoes the body, with `X-Method`, `X-Path`, `X-Query`, `X-Body-Length` headers;
/// - `/slow`: answers after 0.5 s from another thread; `/delay`: after 0.2 s from another thread.
let echoHandler: HTTPHandler = { request, respond in
    var response = HTTPResponse(status: 200, body: request.body)
    response.headers.add(name: "X-Method", value: request.method)
    response.headers.add(name: "X-Path", value: request.path)
    response.headers.add(name: "X-Query", value: request.query ?? "-")
    response.headers.add(name: "X-Body-Length", value: String(request.body.count))
    if request.path == "/text" { response.body = Array("hello".utf8) }
    if request.path == "/empty" { response.status = 204; response.body = [] }
    let reply = response
    switch request.path {
    case "/slow":
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { respond(reply) }
    case "/delay":
        let requested = ObjectIdentifier(Thread.current)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.2)
            var r = reply
            r.headers.add(name: "X-Other-Thread", value: ObjectIdentifier(Thread.current) != requested ? "yes" : "no")
            respond(r)
        }
    default:
        respond(response)
    }
}

extension XCTestCase {
    /// Starts a server on 127.0.0.1, ephemeral port.
    func startServer(configure: (inout HTTPServerConfiguration) -> Void = { _ in },
                     logger: Logger = Logger(label: "http-test", factory: { _ in SwiftLogNoOpLogHandler() }),
                     bodyLimit: (@Sendable (String, String) -> Int)? = nil,
                     headPolicy: HTTPHeadPolicy? = nil,
                     handler: @escaping HTTPHandler = echoHandler) throws -> HTTPServer {
        var configuration = HTTPServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configure(&configuration)
        let server = HTTPServer(configuration: configuration, logger: logger, bodyLimit: bodyLimit,
                                headPolicy: headPolicy, handler: handler)
        try server.start()
        return server
    }

    /// A server-generated JSON error that closes the connection.
    func assertJSONError(_ response: TestResponse?, _ status: Int, file: StaticString = #filePath, line: UInt = #line) {
        guard let response else { return XCTFail("no response", file: file, line: line) }
        XCTAssertEqual(response.status, status, response.bodyText, file: file, line: line)
        XCTAssertEqual(response.headers["Content-Type"], "application/json", file: file, line: line)
        XCTAssertEqual(response.headers["Connection"], "close", file: file, line: line)
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        XCTAssertNotNil(object?["error"] as? String, "body: \(response.bodyText)", file: file, line: line)
    }

    /// Polls `condition` until true or `timeout` seconds pass.
    func waitUntil(_ timeout: Double = 2, _ condition: () -> Bool) -> Bool {
        let end = Date(timeIntervalSinceNow: timeout)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }
}

extension XCTestCase {
    /// A GET request head for `path` with `extra` header lines (each ending in CRLF).
    func get(_ path: String, extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: test\r\n\(extra)\r\n"
    }
}
