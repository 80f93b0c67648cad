import Foundation
import XCTest
@testable import HTTPServer

/// The global request-body budget: raw and decoded bytes of every request in progress.
final class HTTPMemoryBudgetTests: XCTestCase {
    /// Handler that keeps `/hold` requests unanswered until `release()`, echoing everything else.
    private final class Holder: @unchecked Sendable {
        private let lock = NSLock()
        private var waiting: [@Sendable () -> Void] = []

        var handler: HTTPHandler {
            { request, respond in
                guard request.path == "/hold" else { return echoHandler(request, respond) }
                self.lock.lock()
                self.waiting.append { respond(HTTPResponse(status: 200)) }
                self.lock.unlock()
            }
        }

        var heldCount: Int { lock.lock(); defer { lock.unlock() }; return waiting.count }

        func release() {
            lock.lock(); let all = waiting; waiting = []; lock.unlock()
            for respond in all { respond() }
        }
    }

    private func post(_ path: String, _ body: [UInt8], extra: String = "") -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: t\r\n\(extra)Content-Length: \(body.count)\r\n\r\n".utf8) + body
    }

    func testAccountReservesWithinTheLimitAndReleasesOnFinish() {
        let budget = HTTPMemoryBudget(limit: 100)
        let a = HTTPBodyAccount(budget: budget)
        let b = HTTPBodyAccount(budget: budget)
        XCTAssertTrue(a.reserve(60))
        XCTAssertFalse(b.reserve(41))
        XCTAssertTrue(b.reserve(40))
        XCTAssertEqual(budget.reservedBytes, 100)
        a.release(10)
        XCTAssertEqual(a.heldBytes, 50)
        a.finish()
        XCTAssertEqual(budget.reservedBytes, 40)
        XCTAssertFalse(a.reserve(1), "a finished request takes no more reservations")
        b.finish()
        XCTAssertEqual(budget.reservedBytes, 0)
    }

    func testBodiesOfQueuedRequestsCountUntilAnswered() throws {
        let holder = Holder()
        let server = try startServer(configure: { $0.maxTotalBodyBytes = 1000 }, handler: holder.handler)
        defer { server.stop(gracePeriod: 1) }
        let first = try TestClient(port: server.boundPort)
        first.send(post("/hold", [UInt8](repeating: 1, count: 800)))
        XCTAssertTrue(waitUntil { holder.heldCount == 1 })
        XCTAssertEqual(server.reservedBodyBytes, 800)

        let second = try TestClient(port: server.boundPort)
        second.send(post("/echo", [UInt8](repeating: 2, count: 300)))
        let refused = second.readResponse()
        assertJSONError(refused, 503)
        XCTAssertEqual(refused?.headers["Retry-After"], "1")

        holder.release()
        XCTAssertEqual(first.readResponse()?.status, 200)
        XCTAssertTrue(waitUntil { server.reservedBodyBytes == 0 })
        let third = try TestClient(port: server.boundPort)
        third.send(post("/echo", [UInt8](repeating: 3, count: 300)))
        XCTAssertEqual(third.readResponse()?.status, 200)
        XCTAssertTrue(waitUntil { server.reservedBodyBytes == 0 })
    }

    func testChunkedBodiesAreChargedAsTheyArrive() throws {
        let server = try startServer(configure: { $0.maxTotalBodyBytes = 100 })
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        let chunk = String(repeating: "x", count: 60)
        client.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n\(chunk)\r\n3c\r\n\(chunk)\r\n0\r\n\r\n")
        let response = client.readResponse()
        assertJSONError(response, 503)
        XCTAssertEqual(response?.headers["Retry-After"], "1")
        XCTAssertTrue(waitUntil { server.reservedBodyBytes == 0 })
    }

    func testInflatedBytesCountAndStopTheInflation() throws {
        let server = try startServer(configure: { $0.maxTotalBodyBytes = 1 << 20; $0.maxBodyBytes = 64 << 20 })
        defer { server.stop(gracePeriod: 1) }
        let bomb = compressedZeros(32 << 20, coding: .gzip)
        resetPeakMemory()
        let before = residentBytes()
        let client = try TestClient(port: server.boundPort)
        client.send(post("/z", bomb, extra: "Content-Encoding: gzip\r\n"))
        let response = client.readResponse()
        assertJSONError(response, 503)
        XCTAssertEqual(response?.headers["Retry-After"], "1")
        XCTAssertLessThan(peakResidentBytes() - before, 16 << 20, "inflation must stop at the budget")
        XCTAssertTrue(waitUntil { server.reservedBodyBytes == 0 })

        let small = HTTPCompression.compress(Array(repeating: 7, count: 200_000), coding: .gzip)
        let ok = try TestClient(port: server.boundPort)
        ok.send(post("/z", small, extra: "Content-Encoding: gzip\r\n"))
        XCTAssertEqual(ok.readResponse()?.headers["X-Body-Length"], "200000")
        XCTAssertTrue(waitUntil { server.reservedBodyBytes == 0 })
    }

    func testHandlerCanChargeItsOwnStructures() throws {
        let budget = HTTPMemoryBudget(limit: 1000)
        let server = try startServer(configure: { $0.bodyMemoryBudget = budget }, handler: { request, respond in
            let charged = request.bodyAccount?.reserve(900) ?? false
            respond(charged ? HTTPResponse(status: 200) : .error(status: 503, "busy"))
        })
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send(post("/a", [UInt8](repeating: 1, count: 50)))
        XCTAssertEqual(client.readResponse()?.status, 200)
        client.send(post("/a", [UInt8](repeating: 1, count: 200)))
        XCTAssertEqual(client.readResponse()?.status, 503)
        XCTAssertTrue(waitUntil { budget.reservedBytes == 0 })
    }
}
