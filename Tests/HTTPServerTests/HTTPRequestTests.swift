import XCTest
@testable import HTTPServer

/// Request-target splitting (origin and absolute form) and keep-alive rules by HTTP version.
final class HTTPRequestTests: XCTestCase {
    func testRequestInitSplitsTarget() {
        let request = HTTPRequest(method: "GET", target: "/a/b?c=d?e")
        XCTAssertEqual(request.path, "/a/b")
        XCTAssertEqual(request.query, "c=d?e")
        XCTAssertEqual(HTTPRequest(target: "*").path, "*")
        XCTAssertEqual(HTTPRequest(target: "https://h").path, "/")
    }

    func testAbsoluteFormKeepsPathAndQueryOnly() {
        let cases: [(String, String, String?)] = [
            ("http://host:8000/v2/models?x=1", "/v2/models", "x=1"),
            ("HTTP://host", "/", nil),
            ("https://host?q", "/", "q"),
            ("http://user@host/a%20b", "/a%20b", nil),
            ("/p?", "/p", ""),
            ("/", "/", nil),
            ("ftp://host/x", "ftp://host/x", nil),   // not http(s): left as given (the parser refuses it)
            ("/a://b", "/a://b", nil),               // origin form containing "://" is a path
        ]
        for (target, path, query) in cases {
            let (p, q) = HTTPRequest.split(target: target)
            XCTAssertEqual(p, path, target)
            XCTAssertEqual(q, query, target)
        }
    }

    func testKeepAliveByVersionAndConnectionTokens() {
        func keepAlive(_ minor: Int, _ connection: [String]) -> Bool {
            HTTPRequest(versionMinor: minor, headers: HTTPHeaders(connection.map { ("Connection", $0) })).wantsKeepAlive
        }
        XCTAssertTrue(keepAlive(1, []))
        XCTAssertFalse(keepAlive(1, ["close"]))
        XCTAssertFalse(keepAlive(1, ["Upgrade, CLOSE"]))
        XCTAssertFalse(keepAlive(1, ["keep-alive", " close\t"]), "close wins over keep-alive")
        XCTAssertFalse(keepAlive(0, []))
        XCTAssertTrue(keepAlive(0, ["Keep-Alive"]))
        XCTAssertFalse(keepAlive(0, ["keep-alive, close"]))
        XCTAssertTrue(keepAlive(1, ["closed"]), "only the exact token counts")
    }

    func testTrimmingOnlySpacesAndTabs() {
        XCTAssertEqual(" \t a b \t".trimmingASCIIWhitespace(), "a b")
        XCTAssertEqual("\n x \n".trimmingASCIIWhitespace(), "\n x \n")
        XCTAssertEqual("   ".trimmingASCIIWhitespace(), "")
    }

    func testHandBuiltRequestsHaveNoConnectionState() {
        let request = HTTPRequest()
        XCTAssertEqual(request.method, "GET")
        XCTAssertFalse(request.isClientGone())
        XCTAssertNil(request.connectionState)
        XCTAssertNil(request.bodyAccount)
    }
}
