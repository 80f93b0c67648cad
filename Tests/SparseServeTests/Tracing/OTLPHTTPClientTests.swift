import Foundation
import XCTest
@testable import SparseServe
#if canImport(Glibc)
import Glibc
#endif

final class OTLPHTTPClientTests: XCTestCase {
    /// A collector stand-in on loopback: answers each request with `answer` (which may close) and
    /// keeps the requests' heads and bodies.
    final class Collector: @unchecked Sendable {
        let fd: Int32
        let port: UInt16
        let answer: String
        private let lock = NSLock()
        private var received: [(head: String, body: [UInt8])] = []
        var requests: [(head: String, body: [UInt8])] { lock.withLock { received } }

        init(answer: String) {
            self.answer = answer
            (fd, port) = OTLPHTTPClientTests.listeningSocket()
            Thread { [self] in serve() }.start()
        }

        private let stopped = DispatchSemaphore(value: 0)

        private func serve() {
            while true {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { stopped.signal(); return }
                Thread { [self] in handle(c) }.start()
            }
        }

        private func handle(_ c: Int32) {
            defer { Glibc.close(c) }
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                guard let end = buffer.firstRange(of: [13, 10, 13, 10]) else {
                    let n = recv(c, &chunk, chunk.count, 0)
                    if n <= 0 { return }
                    buffer += chunk[..<n]
                    continue
                }
                let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                while buffer.count < end.upperBound + length {
                    let n = recv(c, &chunk, chunk.count, 0)
                    if n <= 0 { return }
                    buffer += chunk[..<n]
                }
                lock.withLock { received.append((head, Array(buffer[end.upperBound..<end.upperBound + length]))) }
                buffer.removeFirst(end.upperBound + length)
                _ = answer.utf8CString.withUnsafeBytes { send(c, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
                if answer.lowercased().contains("connection: close") { return }
            }
        }

        /// Stops accepting (the accept thread has returned before the descriptor is closed).
        func close() {
            shutdown(fd, Int32(SHUT_RDWR))
            stopped.wait()
            Glibc.close(fd)
        }
    }

    /// A TCP socket listening on a free loopback port.
    static func listeningSocket() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        listen(fd, 8)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    func testPostsProtobufWithHeadersOverOneKeptAliveConnection() throws {
        let collector = Collector(answer: "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 2\r\n\r\nok")
        defer { collector.close() }
        let client = try OTLPHTTPClient(url: "http://127.0.0.1:\(collector.port)/v1/traces",
                                        environment: ["OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,bad\r\nname=x"])
        try client.post([1, 2, 3])
        try client.post(Array(repeating: 7, count: 100_000))
        let got = collector.requests
        XCTAssertEqual(got.count, 2)
        XCTAssertTrue(got[0].head.hasPrefix("POST /v1/traces HTTP/1.1\r\n"), got[0].head)
        XCTAssertTrue(got[0].head.contains("Content-Type: application/x-protobuf"))
        XCTAssertTrue(got[0].head.contains("authorization: Bearer abc"))
        XCTAssertEqual(got[0].body, [1, 2, 3])
        XCTAssertEqual(got[1].body.count, 100_000)
    }

    func testAnErrorAnswerOrNoCollectorThrows() throws {
        let refusing = Collector(answer: "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n")
        defer { refusing.close() }
        let client = try OTLPHTTPClient(url: "http://127.0.0.1:\(refusing.port)/v1/traces", environment: [:])
        XCTAssertThrowsError(try client.post([1])) { XCTAssertTrue("\($0)".contains("403"), "\($0)") }
        XCTAssertThrowsError(try client.post([1]), "and again on the next post")
        let closed = Collector(answer: "")
        let port = closed.port
        closed.close()
        let down = try OTLPHTTPClient(url: "http://127.0.0.1:\(port)/v1/traces", environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "500"])
        XCTAssertThrowsError(try down.post([1])) { XCTAssertTrue("\($0)".contains("cannot connect"), "\($0)") }
    }

    func testACollectorClosingTheConnectionIsReconnected() throws {
        let collector = Collector(answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        defer { collector.close() }
        let client = try OTLPHTTPClient(url: "http://127.0.0.1:\(collector.port)/v1/traces", environment: [:])
        for _ in 0..<3 { try client.post([9]) }
        XCTAssertEqual(collector.requests.count, 3)
    }

    func testASilentCollectorTimesOut() throws {
        let (silent, port) = Self.listeningSocket()  // listens, never accepts or answers
        defer { Glibc.close(silent) }
        let client = try OTLPHTTPClient(url: "http://127.0.0.1:\(port)/v1/traces",
                                        environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "300"])
        let t = Date()
        XCTAssertThrowsError(try client.post([1])) { XCTAssertTrue("\($0)".contains("in time"), "\($0)") }
        XCTAssertLessThan(Date().timeIntervalSince(t), 5)
    }

    func testAnswerHeaderValuesAreTrimmed() {
        XCTAssertEqual(HTTPResponseReader.trimmed(" \t 12 a\t "), "12 a")
        XCTAssertEqual(HTTPResponseReader.trimmed("  "), "")
    }

    func testHeadersParsing() {
        let h = OTLPHTTPClient.headers("a=1, b = x%3Dy ,=novalue,c d=2,e")
        XCTAssertEqual(h.map(\.0), ["a", "b"])
        XCTAssertEqual(h.map(\.1), ["1", "x=y"])
    }

    func testABodyInPartsIsSentAsOne() throws {
        let collector = Collector(answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        defer { collector.close() }
        let client = try OTLPHTTPClient(url: "http://127.0.0.1:\(collector.port)/v1/traces", environment: [:])
        let head: [UInt8] = [1, 2, 3], spans = (0..<300_000).map { UInt8(truncatingIfNeeded: $0) }, empty: [UInt8] = []
        try head.withUnsafeBytes { a in try spans.withUnsafeBytes { b in try empty.withUnsafeBytes { c in try client.post([a, c, b]) } } }
        let got = collector.requests
        XCTAssertEqual(got.count, 1)
        XCTAssertTrue(got[0].head.contains("Content-Length: 300003"), got[0].head)
        XCTAssertEqual(got[0].body, head + spans, "the parts in order, larger than one send takes")
    }
}
