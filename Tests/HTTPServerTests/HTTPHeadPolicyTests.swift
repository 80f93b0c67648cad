import Foundation
import XCTest
@testable import HTTPServer

/// The head policy decides before any body byte is read: refused bodies are never read,
/// inflated or handed to the handler.
final class HTTPHeadPolicyTests: XCTestCase {
    /// Accepts only `Authorization: Bearer k`; counts the requests that reach the handler.
    private final class Gate: @unchecked Sendable {
        private let lock = NSLock()
        private var handled = 0
        private var heads: [HTTPRequest] = []

        var handledCount: Int { lock.lock(); defer { lock.unlock() }; return handled }
        var seenHeads: [HTTPRequest] { lock.lock(); defer { lock.unlock() }; return heads }

        var policy: HTTPHeadPolicy {
            { head in
                self.lock.lock(); self.heads.append(head); self.lock.unlock()
                guard head.headers["authorization"] == "Bearer k" else {
                    var response = HTTPResponse.error(status: 401, "missing or invalid API key")
                    response.headers.add(name: "WWW-Authenticate", value: "Bearer")
                    return .reject(response)
                }
                return .accept(maxBodyBytes: head.path == "/small" ? 10 : 128 << 20)
            }
        }

        var handler: HTTPHandler {
            { request, respond in
                self.lock.lock(); self.handled += 1; self.lock.unlock()
                echoHandler(request, respond)
            }
        }
    }

    private func startGated() throws -> (Gate, HTTPServer) {
        let gate = Gate()
        return (gate, try startServer(headPolicy: gate.policy, handler: gate.handler))
    }

    func testUnauthenticatedBodyIsRefusedBeforeItIsSent() throws {
        let (gate, server) = try startGated()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        // Announce 50 MB and send only the head: the answer must not wait for the body.
        client.send("POST /infer HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n\r\n")
        let response = client.readResponse()
        assertJSONError(response, 401)
        XCTAssertEqual(response?.headers["WWW-Authenticate"], "Bearer")
        XCTAssertTrue(client.waitForClose())
        XCTAssertEqual(gate.handledCount, 0)
        XCTAssertEqual(server.reservedBodyBytes, 0)
    }

    func testExpectContinueIsNotGrantedToARefusedHead() throws {
        let (gate, server) = try startGated()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST /infer HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assertJSONError(client.readResponse(), 401) // not 100 Continue
        let ok = try TestClient(port: server.boundPort)
        ok.send("POST /infer HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        XCTAssertEqual(ok.readResponse()?.status, 100)
        ok.send("hello")
        XCTAssertEqual(ok.readResponse()?.bodyText, "hello")
    }

    func testRefusedGzipBombIsNeverInflated() throws {
        let (gate, server) = try startGated()
        defer { server.stop(gracePeriod: 1) }
        let bomb = compressedZeros(64 << 20, coding: .gzip)
        let head = "POST /infer HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: \(bomb.count)\r\n"
        resetPeakMemory()
        let before = residentBytes()
        let started = Date()
        let client = try TestClient(port: server.boundPort)
        client.send(Array((head + "\r\n").utf8) + bomb)
        assertJSONError(client.readResponse(), 401)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1)
        XCTAssertLessThan(peakResidentBytes() - before, 16 << 20, "a refused body must not be inflated")
        XCTAssertEqual(gate.handledCount, 0)

        let allowed = try TestClient(port: server.boundPort)
        allowed.send(Array((head + "Authorization: Bearer k\r\n\r\n").utf8) + bomb)
        let response = try XCTUnwrap(allowed.readResponse())
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["X-Body-Length"], String(64 << 20))
        XCTAssertEqual(gate.handledCount, 1)
    }

    func testPolicySeesTheHeadAndSetsTheBodyLimit() throws {
        let (gate, server) = try startGated()
        defer { server.stop(gracePeriod: 1) }
        let client = try TestClient(port: server.boundPort)
        client.send("POST /small?q=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\nContent-Length: 11\r\n\r\n")
        assertJSONError(client.readResponse(), 413)
        let head = try XCTUnwrap(gate.seenHeads.last)
        XCTAssertEqual(head.method, "POST")
        XCTAssertEqual(head.path, "/small")
        XCTAssertEqual(head.query, "q=1")
        XCTAssertTrue(head.body.isEmpty)
        XCTAssertTrue(head.remoteAddress.hasPrefix("127.0.0.1:"), head.remoteAddress)
    }

    func testParserReportsTheRejectionAndStaysFailed() {
        var parser = HTTPRequestParser(limits: HTTPParserLimits(), headPolicy: { _ in .reject(.error(status: 403, "no")) })
        parser.append(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc".utf8))
        guard case .rejected(let response) = parser.next() else { return XCTFail("expected a rejection") }
        XCTAssertEqual(response.status, 403)
        guard case .failure = parser.next() else { return XCTFail("the parser must stay failed") }
    }
}
