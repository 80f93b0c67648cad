import XCTest
@testable import HTTPServer

/// Request-target forms (RFC 9112 §3.2); found by fuzzing: a relative target used to be accepted.
final class RequestTargetTests: XCTestCase {
    private func firstEvent(_ text: String) -> HTTPRequestParser.Event {
        var parser = HTTPRequestParser(limits: HTTPParserLimits(), bodyLimit: { _, _ in 1024 })
        parser.append(Array(text.utf8))
        while true {
            let event = parser.next()
            if case .headComplete = event { continue }
            return event
        }
    }

    func testAcceptedForms() {
        for (line, path) in [("GET /v2 HTTP/1.1", "/v2"), ("GET http://h:8000/v2?x=1 HTTP/1.1", "/v2"),
                             ("GET HTTPS://h HTTP/1.1", "/"), ("OPTIONS * HTTP/1.1", "*")] {
            guard case .request(let request) = firstEvent(line + "\r\nHost: h\r\n\r\n") else {
                return XCTFail("\(line) was refused")
            }
            XCTAssertEqual(request.path, path, line)
        }
    }

    func testOtherTargetsAre400() {
        for line in ["GET E/a HTTP/1.1", "GET v2/health HTTP/1.1", "GET * HTTP/1.1", "GET ftp://h/x HTTP/1.1", "GET ?x HTTP/1.1"] {
            guard case .failure(let error) = firstEvent(line + "\r\nHost: h\r\n\r\n") else {
                return XCTFail("\(line) was accepted")
            }
            XCTAssertEqual(error.status, 400, line)
        }
    }
}
