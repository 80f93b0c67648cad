import Foundation
import Logging
import XCTest
@testable import HTTPServer

/// One connection's request cycle against a real server on 127.0.0.1 with raw sockets: keep-alive,
/// pipelining, bodies (chunked, large, Expect), limits and framing errors, HEAD/204/HTTP 1.0
/// rules, handler-requested close, the header/body/idle timeouts and handlers completing
/// elsewhere. (HTTPServerTests: start, stop, caps and descriptors of the server around them.)
final class HTTPConnectionTests: XCTestCase {
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
}
