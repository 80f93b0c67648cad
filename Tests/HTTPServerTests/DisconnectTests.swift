import Foundation
import XCTest
@testable import HTTPServer
#if canImport(Glibc)
import Glibc
#endif

/// Requests held by a handler until the test releases them.
final class HeldRequests: @unchecked Sendable {
    private let lock = NSLock()
    private var held: [(HTTPRequest, @Sendable (HTTPResponse) -> Void)] = []
    private(set) var goneCallbacks = 0

    var count: Int { lock.lock(); defer { lock.unlock() }; return held.count }

    var handler: HTTPHandler {
        { request, respond in
            self.lock.lock()
            self.held.append((request, respond))
            self.lock.unlock()
            request.connectionState?.onClientGone {
                self.lock.lock(); self.goneCallbacks += 1; self.lock.unlock()
            }
        }
    }

    func request(_ index: Int) -> HTTPRequest {
        lock.lock(); defer { lock.unlock() }
        return held[index].0
    }

    var callbacksRun: Int { lock.lock(); defer { lock.unlock() }; return goneCallbacks }

    func respond(_ index: Int, _ response: HTTPResponse = HTTPResponse(status: 200, body: Array("done".utf8))) {
        lock.lock()
        let respond = held[index].1
        lock.unlock()
        respond(response)
    }
}

/// `HTTPRequest.isClientGone` / `HTTPConnectionState` over real sockets.
final class DisconnectTests: XCTestCase {
    private let request = "POST /hold HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi"
    /// A second, pipelined request larger than what the server buffers while handling the first.
    private let pipelinedFiller = "POST /next HTTP/1.1\r\nHost: test\r\nContent-Length: 200000\r\n\r\n"
        + String(repeating: "x", count: 200_000)

    /// Starts a server whose handler holds requests, connects, sends `request` (+ `extra`) and waits
    /// until the handler has it. Stop the server when done.
    private func holdOneRequest(extra: String = "") throws -> (HeldRequests, HTTPServer, TestClient) {
        let held = HeldRequests()
        let server = try startServer(handler: held.handler)
        let client = try TestClient(port: server.boundPort)
        client.send(request + extra)
        XCTAssertTrue(waitUntil { held.count == 1 })
        return (held, server, client)
    }

    func testFlagFlipsWhenTheClientCloses() throws {
        let (held, server, client) = try holdOneRequest()
        defer { server.stop(gracePeriod: 1) }
        let state = try XCTUnwrap(held.request(0).connectionState)
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertFalse(held.request(0).isClientGone(), "client still connected")
        client.close()
        XCTAssertTrue(waitUntil { state.isClientGone }, "flag did not flip after the client closed")
        XCTAssertTrue(held.request(0).isClientGone())
        XCTAssertTrue(waitUntil { held.callbacksRun == 1 })
        // A callback registered late runs at once.
        let late = LockedFlag()
        state.onClientGone { late.set() }
        XCTAssertTrue(late.value)
        held.respond(0) // answering a gone client is harmless
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 0 })
    }

    /// Only the request of the client that left is marked; the other one is answered normally.
    func testOnlyTheLeavingClientIsMarked() throws {
        let (held, server, leaving) = try holdOneRequest()
        defer { server.stop(gracePeriod: 0) }
        let staying = try TestClient(port: server.boundPort)
        staying.send(request)
        XCTAssertTrue(waitUntil { held.count == 2 })
        leaving.close()
        XCTAssertTrue(waitUntil { held.request(0).isClientGone() }, "the handler never saw the client leave")
        XCTAssertFalse(held.request(1).isClientGone(), "the other client is still there")
        held.respond(0)
        held.respond(1)
        XCTAssertEqual(staying.readResponse()?.status, 200)
        XCTAssertFalse(held.request(1).isClientGone())
        XCTAssertEqual(held.callbacksRun, 1)
    }

    func testHandlerWaitingForTheFlag() throws {
        // The handler polls the flag from another thread and answers 499 once the client left.
        let answered = LockedFlag()
        let server = try startServer(handler: { request, respond in
            Thread.detachNewThread {
                let end = Date(timeIntervalSinceNow: 5)
                while !request.isClientGone() && Date() < end { Thread.sleep(forTimeInterval: 0.005) }
                if request.isClientGone() { answered.set() }
                respond(HTTPResponse(status: request.isClientGone() ? 499 : 200))
            }
        })
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(request)
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertFalse(answered.value)
        client.close()
        XCTAssertTrue(waitUntil(3) { answered.value })
    }

    func testResetFlipsTheFlag() throws {
        let (held, server, client) = try holdOneRequest()
        defer { server.stop(gracePeriod: 1) }
        var linger = linger(l_onoff: 1, l_linger: 0)
        setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        client.close() // RST
        XCTAssertTrue(waitUntil { held.request(0).isClientGone() })
    }

    /// With more pipelined bytes than the server buffers, reading pauses; a hang-up is still seen (by polling).
    func testHangUpSeenWhileReadingIsPaused() throws {
        let (held, server, client) = try holdOneRequest(extra: pipelinedFiller)
        defer { server.stop(gracePeriod: 1) }
        Thread.sleep(forTimeInterval: 0.4)
        XCTAssertFalse(held.request(0).isClientGone())
        client.shutdownWrite() // FIN while the server has unread bytes
        XCTAssertTrue(waitUntil { held.request(0).isClientGone() }, "hang-up not noticed while reading was paused")
    }

    /// ... and the requests left in the socket are served once the first is answered.
    func testPipelinedRequestsSurviveWhileTheClientStays() throws {
        let (held, server, client) = try holdOneRequest(extra: pipelinedFiller)
        defer { server.stop(gracePeriod: 1) }
        held.respond(0)
        XCTAssertEqual(client.readResponse()?.bodyText, "done")
        XCTAssertTrue(waitUntil { held.count == 2 })
        XCTAssertEqual(held.request(1).body.count, 200_000)
        XCTAssertFalse(held.request(1).isClientGone())
        held.respond(1, HTTPResponse(status: 200, body: Array("second".utf8)))
        XCTAssertEqual(client.readResponse()?.bodyText, "second")
        XCTAssertEqual(held.callbacksRun, 0)
    }

    func testAnsweredRequestIsNotMarkedLater() throws {
        let (held, server, client) = try holdOneRequest()
        defer { server.stop(gracePeriod: 1) }
        held.respond(0)
        XCTAssertEqual(client.readResponse()?.status, 200)
        client.close()
        XCTAssertTrue(waitUntil { server.activeConnectionCount == 0 })
        XCTAssertFalse(held.request(0).isClientGone())
        XCTAssertEqual(held.callbacksRun, 0)
    }

    func testForcedCloseMarksTheRequestGone() throws {
        let (held, server, client) = try holdOneRequest()
        server.stop(gracePeriod: 0.1) // the request never completes: force-closed
        XCTAssertTrue(held.request(0).isClientGone())
        XCTAssertTrue(client.fd >= 0)
        XCTAssertTrue(HTTPRequest().connectionState == nil && !HTTPRequest().isClientGone())
    }
}

/// A thread-safe flag for tests.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    func set() { lock.lock(); flag = true; lock.unlock() }
}
