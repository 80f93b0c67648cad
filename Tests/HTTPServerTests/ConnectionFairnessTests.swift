import Foundation
import XCTest
@testable import HTTPServer

/// One client cannot hold every connection slot: a per-address cap, and silent connections are
/// dropped after a short first-request timeout.
final class ConnectionFairnessTests: XCTestCase {
    private let get = "GET /text HTTP/1.1\r\nHost: t\r\n\r\n"

    func testPerClientCapLeavesRoomForOtherClients() throws {
        let server = try startServer(configure: { $0.maxConnectionsPerClient = 3; $0.maxConnections = 10 })
        defer { server.stop(gracePeriod: 1) }
        let hogs = try (0 ..< 3).map { _ in try TestClient(port: server.boundPort, source: "127.0.0.2") }
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 3 })
        let extra = try TestClient(port: server.boundPort, source: "127.0.0.2")
        let refused = extra.readResponse()
        assertJSONError(refused, 503)
        XCTAssertEqual(refused?.headers["Retry-After"], "1")

        let other = try TestClient(port: server.boundPort)
        other.send(get)
        XCTAssertEqual(other.readResponse()?.status, 200)

        hogs[0].close()
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 3 }) // two hogs and `other`
        let again = try TestClient(port: server.boundPort, source: "127.0.0.2")
        again.send(get)
        XCTAssertEqual(again.readResponse()?.status, 200, "a freed slot can be used again")
    }

    func testSilentConnectionsAreDroppedAfterTheFirstRequestTimeout() throws {
        let server = try startServer(configure: { $0.firstRequestTimeout = 0.3; $0.idleTimeout = 30 })
        defer { server.stop(gracePeriod: 1) }
        let silent = try TestClient(port: server.boundPort)
        let talking = try TestClient(port: server.boundPort)
        talking.send(get)
        XCTAssertEqual(talking.readResponse()?.status, 200)
        let started = Date()
        XCTAssertTrue(silent.waitForClose())
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        Thread.sleep(forTimeInterval: 0.5)
        talking.send(get)
        XCTAssertEqual(talking.readResponse()?.status, 200, "after a request the longer idle timeout applies")
    }

    func testClientAddressDropsThePort() {
        XCTAssertEqual(HTTPServer.clientAddress("127.0.0.1:5000"), "127.0.0.1")
        XCTAssertEqual(HTTPServer.clientAddress("[::1]:5000"), "[::1]")
        XCTAssertEqual(HTTPServer.clientAddress(""), "")
    }
}
