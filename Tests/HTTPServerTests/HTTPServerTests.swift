import Foundation
import Logging
import XCTest
@testable import HTTPServer

/// The server around its connections, on 127.0.0.1 with raw sockets: graceful and forced stop, the
/// connection cap, start errors, IPv6, logging, descriptors, I/O queues, rebinding.
final class HTTPServerTests: XCTestCase {
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
