import Foundation
import Logging
import XCTest
@testable import HTTPServer

/// Tests against a real server on 127.0.0.1 with raw sockets.
final class HTTPServerTests: XCTestCase {
    private func get(_ path: String, extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: test\r\n\(extra)\r\n"
    }

    func testKeepAliveSequence() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        for i in 0 ..< 3 {
            client.send("POST /echo?i=\(i) HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nab\(i)")
            let response = try XCTUnwrap(client.readResponse())
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.bodyText, "ab\(i)")
            XCTAssertEqual(response.headers["X-Query"], "i=\(i)")
            XCTAssertEqual(response.headers["Content-Length"], "3")
            XCTAssertNil(response.headers["Connection"])
            XCTAssertEqual(response.headers["Server"], "SparseServe")
            XCTAssertTrue(response.headers["Date"]?.hasSuffix(" GMT") ?? false)
        }
        XCTAssertEqual(server.activeConnectionCount, 1)
        XCTAssertEqual(server.boundAddress, "127.0.0.1")
        XCTAssertGreaterThan(server.boundPort, 0)
    }

    func testPipelinedResponsesStayInOrder() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/delay") + get("/text")
            + "POST /third HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
            + get("/last", extra: "Connection: close\r\n"))
        let paths = (0 ..< 4).compactMap { _ in client.readResponse()?.headers["X-Path"] }
        XCTAssertEqual(paths, ["/delay", "/text", "/third", "/last"])
        XCTAssertTrue(client.waitForClose())
    }

    func testChunkedRequestBody() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        client.send("6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.bodyText, "hello world")
    }

    func testLargeBodyRoundTrip() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        let body = (0 ..< 3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        client.send(Array("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body.count, body.count)
        XCTAssertTrue(response.body == body)
    }

    func testExpectContinue() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST /e HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        let interim = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(interim.status, 100)
        client.send("12345")
        let final = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(final.status, 200)
        XCTAssertEqual(final.bodyText, "12345")
    }

    func testExpectContinueOverLimitGets413() throws {
        let server = try startServer(bodyLimit: { _, path in path == "/small" ? 10 : 1000 })
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST /small HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
        assertJSONError(client.readResponse(), 413)
        XCTAssertTrue(client.waitForClose())
        // Without Expect and with the body already sent: still 413, readable despite the unread body.
        let second = try TestClient(port: server.boundPort)
        second.send("POST /other HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "x", count: 5000))
        assertJSONError(second.readResponse(), 413)
    }

    func testUnsupportedExpectationGets417() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST / HTTP/1.1\r\nHost: test\r\nExpect: 200-maybe\r\nContent-Length: 1\r\n\r\nx")
        assertJSONError(client.readResponse(), 417)
    }

    func testRequestLineTooLongGets414() throws {
        let server = try startServer { $0.maxRequestLineBytes = 100 }
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/" + String(repeating: "a", count: 200)))
        assertJSONError(client.readResponse(), 414)
        XCTAssertTrue(client.waitForClose())
    }

    func testHeaderLimitsGet431() throws {
        let server = try startServer { $0.maxHeaderBytes = 256; $0.maxHeaderCount = 4 }
        defer { server.stop(gracePeriod: 1) }
        let big = try TestClient(port: server.boundPort)
        big.send(get("/", extra: "X-Big: \(String(repeating: "v", count: 400))\r\n"))
        assertJSONError(big.readResponse(), 431)
        XCTAssertTrue(big.waitForClose())
        let many = try TestClient(port: server.boundPort)
        many.send(get("/", extra: "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"))
        assertJSONError(many.readResponse(), 431)
    }

    func testContentLengthWithTransferEncodingGets400() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assertJSONError(client.readResponse(), 400)
        XCTAssertTrue(client.waitForClose())
    }

    func testBareLFAndBadVersionOverSocket() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let lf = try TestClient(port: server.boundPort)
        lf.send("GET / HTTP/1.1\nHost: test\n\n")
        assertJSONError(lf.readResponse(), 400)
        XCTAssertTrue(lf.waitForClose())
        let version = try TestClient(port: server.boundPort)
        version.send("GET / HTTP/2.0\r\nHost: test\r\n\r\n")
        assertJSONError(version.readResponse(), 505)
    }

    func testHeadHasNoBody() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("HEAD /text HTTP/1.1\r\nHost: test\r\n\r\n")
        let head = try XCTUnwrap(client.readResponse(isHead: true))
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["X-Method"], "HEAD")
        XCTAssertEqual(head.headers["Content-Length"], "5")
        // If any body bytes had been sent, this next response would be misparsed.
        client.send(get("/text"))
        let next = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(next.bodyText, "hello")
        XCTAssertEqual(client.pendingBytes, 0)
    }

    func testNoContentHasNoContentLength() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/empty"))
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.status, 204)
        XCTAssertNil(response.headers["Content-Length"])
        XCTAssertNotNil(response.headers["Date"])
    }

    func testHTTP10ClosesByDefault() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("GET /text HTTP/1.0\r\n\r\n")
        let response = try XCTUnwrap(client.readResponse())
        XCTAssertEqual(response.bodyText, "hello")
        XCTAssertEqual(response.headers["Connection"], "close")
        XCTAssertTrue(client.waitForClose())

        let keepAlive = try TestClient(port: server.boundPort)
        for _ in 0 ..< 2 {
            keepAlive.send("GET /text HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let r = try XCTUnwrap(keepAlive.readResponse())
            XCTAssertEqual(r.headers["Connection"], "keep-alive")
        }
    }

    func testHandlerConnectionCloseIsHonoured() throws {
        let server = try startServer(handler: { _, respond in
            respond(HTTPResponse(status: 200, headers: HTTPHeaders([("Connection", "close")]), body: [1]))
        })
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/"))
        XCTAssertEqual(client.readResponse()?.headers.values(for: "Connection"), ["close"])
        XCTAssertTrue(client.waitForClose())
    }

    func testHeaderReadTimeoutGives408() throws {
        let server = try startServer { $0.headerReadTimeout = 0.3 }
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        let started = Date()
        client.send("GET / HTTP/1.1\r\nHost: te")
        assertJSONError(client.readResponse(), 408)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        XCTAssertTrue(client.waitForClose())
    }

    func testBodyReadTimeoutGives408() throws {
        let server = try startServer { $0.bodyReadTimeout = 0.3 }
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        assertJSONError(client.readResponse(), 408)
    }

    func testIdleTimeoutClosesSilently() throws {
        let server = try startServer { $0.idleTimeout = 0.3 }
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/text"))
        XCTAssertEqual(client.readResponse()?.status, 200)
        let started = Date()
        XCTAssertTrue(client.waitForClose(), "connection should be closed without a response")
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 0 })
        // A connection that never sends anything is closed too.
        let silent = try TestClient(port: server.boundPort)
        XCTAssertTrue(silent.waitForClose())
    }

    func testHandlerCompletingOnAnotherThread() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        for _ in 0 ..< 2 {
            client.send(get("/delay"))
            let response = try XCTUnwrap(client.readResponse())
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers["X-Other-Thread"], "yes")
        }
    }

    func testGracefulStopFinishesInFlightRequest() throws {
        let server = try startServer()
        let port = server.boundPort
        let idle = try TestClient(port: port)
        idle.send(get("/text"))
        XCTAssertEqual(idle.readResponse()?.status, 200)
        let busy = try TestClient(port: port)
        busy.send(get("/slow"))
        Thread.sleep(forTimeInterval: 0.1)
        let started = Date()
        server.stop(gracePeriod: 5)
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 0.2, "stop must wait for the in-flight request")
        XCTAssertLessThan(elapsed, 2)
        let response = try XCTUnwrap(busy.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["Connection"], "close")
        XCTAssertTrue(busy.waitForClose())
        XCTAssertTrue(idle.waitForClose())
        XCTAssertEqual(server.activeConnectionCount, 0)
        XCTAssertThrowsError(try TestClient(port: port), "listener must be closed")
    }

    func testStopForceClosesAfterGracePeriod() throws {
        let server = try startServer()
        let client = try TestClient(port: server.boundPort)
        client.send(get("/slow"))
        Thread.sleep(forTimeInterval: 0.05)
        let started = Date()
        server.stop(gracePeriod: 0.1)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5)
        XCTAssertNil(client.readResponse())
        XCTAssertEqual(server.activeConnectionCount, 0)
        Thread.sleep(forTimeInterval: 0.5) // the late completion must be ignored without crashing
    }

    func testStopIsPromptWhenIdle() throws {
        let server = try startServer()
        let client = try TestClient(port: server.boundPort)
        client.send(get("/text"))
        XCTAssertEqual(client.readResponse()?.status, 200)
        let started = Date()
        server.stop(gracePeriod: 10)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0)
        XCTAssertTrue(client.waitForClose())
        server.stop(gracePeriod: 1) // second stop is a no-op
    }

    func testConnectionCap() throws {
        let server = try startServer { $0.maxConnections = 2 }
        defer { server.stop(gracePeriod: 1) }
        let first = try TestClient(port: server.boundPort)
        let second = try TestClient(port: server.boundPort)
        for client in [first, second] {
            client.send(get("/text"))
            XCTAssertEqual(client.readResponse()?.status, 200)
        }
        let third = try TestClient(port: server.boundPort)
        third.send(get("/text"))
        let refused = third.readResponse()
        assertJSONError(refused, 503)
        XCTAssertEqual(refused?.headers["Retry-After"], "1")
        XCTAssertTrue(third.waitForClose())

        first.close()
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 1 })
        let fourth = try TestClient(port: server.boundPort)
        fourth.send(get("/text"))
        XCTAssertEqual(fourth.readResponse()?.status, 200)
    }

    func testStartErrors() throws {
        let server = try startServer()
        defer { server.stop(gracePeriod: 1) }
        var configuration = HTTPServerConfiguration()
        configuration.port = server.boundPort
        let clash = HTTPServer(configuration: configuration, logger: Logger(label: "t"), handler: echoHandler)
        XCTAssertThrowsError(try clash.start()) { error in
            XCTAssertTrue("\(error)".contains("in use"), "\(error)")
        }
        configuration.host = "not-an-address"
        configuration.port = 0
        XCTAssertThrowsError(try HTTPServer(configuration: configuration, logger: Logger(label: "t"), handler: echoHandler).start())
        XCTAssertThrowsError(try server.start(), "second start")
    }

    func testLocalhostAndIPv6() throws {
        let local = try startServer { $0.host = "localhost" }
        XCTAssertEqual(local.boundAddress, "127.0.0.1")
        local.stop(gracePeriod: 1)
        var configuration = HTTPServerConfiguration()
        configuration.host = "::1"
        configuration.port = 0
        let v6 = HTTPServer(configuration: configuration, logger: Logger(label: "t"), handler: echoHandler)
        do { try v6.start() } catch { throw XCTSkip("IPv6 loopback unavailable: \(error)") }
        XCTAssertEqual(v6.boundAddress, "::1")
        v6.stop(gracePeriod: 1)
    }

    func testOneDebugLogLinePerRequest() throws {
        let capture = LogCapture()
        let server = try startServer(logger: capture.makeLogger())
        let client = try TestClient(port: server.boundPort)
        client.send(get("/text?x=1") + get("/other"))
        XCTAssertEqual(client.readResponse()?.status, 200)
        XCTAssertEqual(client.readResponse()?.status, 200)
        server.stop(gracePeriod: 1)
        let requestLines = capture.messages.filter { $0.0 == .debug && $0.1.contains(" 200") }
        XCTAssertEqual(requestLines.map(\.1), ["GET /text?x=1 200", "GET /other 200"])
    }

    func testNoDescriptorLeak() throws {
        func openDescriptors() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        }
        func exercise() throws {
            let server = try startServer { $0.maxConnections = 4; $0.headerReadTimeout = 0.2 }
            var clients: [TestClient] = []
            for i in 0 ..< 5 {
                let client = try TestClient(port: server.boundPort)
                switch i {
                case 0: client.send(get("/text"))
                case 1: client.send("BAD\r\n\r\n")
                case 2: client.send("GET / HTTP/1.1\r\n")
                default: client.send(get("/slow"))
                }
                clients.append(client)
            }
            _ = clients[0].readResponse()
            _ = clients[1].readResponse()
            Thread.sleep(forTimeInterval: 0.1)
            clients.removeLast() // peer goes away while over the cap
            server.stop(gracePeriod: 0.3) // force-closes the in-flight /slow request
            XCTAssertEqual(server.activeConnectionCount, 0)
            clients.removeAll()
        }
        try exercise() // warm-up: lets Dispatch create its own descriptors
        let before = openDescriptors()
        try exercise()
        try exercise()
        XCTAssertTrue(waitUntil(1) { openDescriptors() <= before }, "before \(before), after \(openDescriptors())")
    }

    func testConnectionsAreSpreadOverIOQueues() throws {
        let server = try startServer { $0.ioThreads = 2 }
        defer { server.stop(gracePeriod: 1) }
        let clients = try (0 ..< 4).map { _ in try TestClient(port: server.boundPort) }
        for client in clients {
            client.send(get("/text"))
            XCTAssertEqual(client.readResponse()?.status, 200)
        }
        let labels = server.connectionQueueLabels
        XCTAssertEqual(labels.count, 4)
        XCTAssertEqual(Set(labels), ["sparseserve.http.io.0", "sparseserve.http.io.1"])
        XCTAssertEqual(labels.filter { $0.hasSuffix(".0") }.count, 2)
    }

    func testRebindRightAfterStop() throws {
        // SO_REUSEADDR: the port is reusable at once even with connections in TIME_WAIT.
        let first = try startServer()
        let port = first.boundPort
        let client = try TestClient(port: port)
        client.send(get("/text", extra: "Connection: close\r\n"))
        XCTAssertEqual(client.readResponse()?.status, 200)
        XCTAssertTrue(client.waitForClose())
        first.stop(gracePeriod: 1)
        let second = try startServer { $0.port = port }
        defer { second.stop(gracePeriod: 1) }
        let again = try TestClient(port: port)
        again.send(get("/text"))
        XCTAssertEqual(again.readResponse()?.status, 200)
    }

    func testSecondCompletionIsIgnored() throws {
        let capture = LogCapture()
        let server = try startServer(logger: capture.makeLogger(), handler: { request, respond in
            respond(HTTPResponse(status: 200, body: Array(request.path.utf8)))
            respond(HTTPResponse(status: 500))
        })
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(get("/one") + get("/two"))
        XCTAssertEqual(client.readResponse()?.bodyText, "/one")
        XCTAssertEqual(client.readResponse()?.bodyText, "/two")
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(client.pendingBytes, 0)
        XCTAssertTrue(capture.messages.contains { $0.0 == .warning && $0.1.contains("more than once") })
    }
}
