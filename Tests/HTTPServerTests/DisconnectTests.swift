import Foundation
import XCTest
@testable import HTTPServer

/// The handler learns that a client left while its request was being handled.
final class DisconnectTests: XCTestCase {
    /// Keeps the `isClientGone` probes of requests the handler has not answered yet.
    final class Held: @unchecked Sendable {
        private let lock = NSLock()
        private var probes: [String: @Sendable () -> Bool] = [:]
        private var responders: [@Sendable (HTTPResponse) -> Void] = []
        func add(_ path: String, _ probe: @escaping @Sendable () -> Bool, _ respond: @escaping @Sendable (HTTPResponse) -> Void) {
            lock.lock(); probes[path] = probe; responders.append(respond); lock.unlock()
        }
        var count: Int { lock.lock(); defer { lock.unlock() }; return probes.count }
        func gone(_ path: String) -> Bool { lock.lock(); let p = probes[path]!; lock.unlock(); return p() }
        func answerAll() {
            lock.lock(); let r = responders; lock.unlock()
            for respond in r { respond(.json(status: 200, Array("{}".utf8))) }
        }
    }

    func testClientCloseIsVisibleToTheHandler() throws {
        let held = Held()
        let server = try startServer(handler: { request, respond in held.add(request.path, request.isClientGone, respond) })
        defer { server.stop(gracePeriod: 0) }

        let leaving = try TestClient(port: server.boundPort)
        leaving.send("POST /leave HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        let staying = try TestClient(port: server.boundPort)
        staying.send("POST /stay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        XCTAssertTrue(waitUntil { held.count == 2 })
        XCTAssertFalse(held.gone("/leave"))
        XCTAssertFalse(held.gone("/stay"))

        leaving.close()
        XCTAssertTrue(waitUntil { held.gone("/leave") }, "the handler never saw the client leave")
        XCTAssertFalse(held.gone("/stay"), "the other client is still there")

        held.answerAll()  // answering a departed client is harmless
        let response = staying.readResponse()
        XCTAssertEqual(response?.status, 200)
        XCTAssertFalse(held.gone("/stay"))
    }
}
