import XCTest
@testable import HTTPServer

final class HTTPMessageTests: XCTestCase {
    func testHeadersAreOrderedAndCaseInsensitive() {
        var headers = HTTPHeaders([("Content-Type", "a"), ("X-Dup", "1")])
        headers.add(name: "x-dup", value: "2")
        XCTAssertEqual(headers["content-type"], "a")
        XCTAssertEqual(headers.values(for: "X-DUP"), ["1", "2"])
        XCTAssertTrue(headers.contains("CONTENT-type"))
        headers.set(name: "X-Dup", value: "3")
        XCTAssertEqual(headers.values(for: "x-dup"), ["3"])
        XCTAssertEqual(headers.map(\.name), ["Content-Type", "X-Dup"])
        headers.remove(name: "content-TYPE")
        XCTAssertNil(headers["Content-Type"])
        XCTAssertFalse(headers.contains("Content-Type"))
        headers.set(name: "New", value: "v")
        XCTAssertEqual(headers.count, 2)
        XCTAssertNil(headers["X-Du"])
    }

    func testErrorResponseIsEscapedJSON() throws {
        let response = HTTPResponse.error(status: 404, "no \"model\" \\ here\n\u{1}é")
        XCTAssertEqual(response.status, 404)
        XCTAssertEqual(response.headers["Content-Type"], "application/json")
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
        XCTAssertEqual(object?["error"], "no \"model\" \\ here\n\u{1}é")
        XCTAssertEqual(HTTPResponse.json(status: 200, Array("{}".utf8)).headers["content-type"], "application/json")
    }

    func testSerializationAddsFramingHeaders() {
        var response = HTTPResponse(status: 200, headers: HTTPHeaders([
            ("Content-Length", "999"), ("Transfer-Encoding", "chunked"), ("X-Bad", "a\r\nInjected: 1"), ("X-Ok", "v"),
        ]), body: Array("hi".utf8))
        var text = String(decoding: response.serialized(omitBody: false, connection: "close", date: "D", serverName: "S"), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertTrue(text.contains("Content-Length: 2\r\n"))
        XCTAssertFalse(text.contains("999"))
        XCTAssertFalse(text.contains("chunked"))
        XCTAssertFalse(text.contains("Injected"))
        XCTAssertTrue(text.contains("X-Ok: v\r\nContent-Length: 2\r\nDate: D\r\nServer: S\r\nConnection: close\r\n\r\nhi"))

        // HEAD keeps the handler's Content-Length and drops the body.
        response.headers.set(name: "Content-Length", value: "5")
        text = String(decoding: response.serialized(omitBody: true, connection: nil, date: "D", serverName: "S"), as: UTF8.self)
        XCTAssertTrue(text.contains("Content-Length: 5\r\n"))
        XCTAssertTrue(text.hasSuffix("\r\n\r\n"))

        // 204 and 304 carry neither body nor Content-Length.
        for status in [204, 304] {
            let bodyless = HTTPResponse(status: status, body: Array("x".utf8))
            text = String(decoding: bodyless.serialized(omitBody: false, connection: nil, date: "D", serverName: "S"), as: UTF8.self)
            XCTAssertFalse(text.contains("Content-Length"))
            XCTAssertTrue(text.hasSuffix("\r\n\r\n"))
        }
    }

    func testReasonPhrasesAndDate() {
        XCTAssertEqual(HTTPStatus.reasonPhrase(431), "Request Header Fields Too Large")
        XCTAssertEqual(HTTPStatus.reasonPhrase(499), "Client Error")
        XCTAssertEqual(HTTPDate.format(784111777), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPDate.shared.now().count, 29)
    }

    func testRequestInitSplitsTarget() {
        let request = HTTPRequest(method: "GET", target: "/a/b?c=d?e")
        XCTAssertEqual(request.path, "/a/b")
        XCTAssertEqual(request.query, "c=d?e")
        XCTAssertEqual(HTTPRequest(target: "*").path, "*")
        XCTAssertEqual(HTTPRequest(target: "https://h").path, "/")
    }
}
