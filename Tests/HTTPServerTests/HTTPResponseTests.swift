import Foundation
import SparseJSON
import XCTest
@testable import HTTPServer

/// HTTPResponse: error bodies through SparseJSON's writer (one string escaper in the package), JSON
/// bodies as given, and serialization with the framing headers the server owns.
final class HTTPResponseTests: XCTestCase {
    func testErrorBodiesUseThePackagesOneEscaper() throws {
        for message in ["plain", "quote \" backslash \\ newline \n tab \t", "control \u{1} \u{7F} del",
                        "separators \u{2028} and \u{2029}", "é, 日本, 🙂", ""] {
            let response = HTTPResponse.error(status: 400, message)
            let text = String(decoding: response.body, as: UTF8.self)
            XCTAssertEqual(text, "{\"error\":\(JSONWriter.quoted(message))}")
            XCTAssertEqual(try JSON.parse(response.body)["error"]?.stringValue, message)
            XCTAssertEqual(response.status, 400)
            XCTAssertEqual(response.headers["Content-Type"], "application/json")
        }
        // JavaScript string literals reject raw line/paragraph separators: they are escaped.
        let separators = String(decoding: HTTPResponse.error(status: 500, "a\u{2028}b\u{2029}c").body, as: UTF8.self)
        XCTAssertEqual(separators, #"{"error":"a\u2028b\u2029c"}"#)
        XCTAssertEqual(String(decoding: HTTPResponse.error(status: 500, "\u{0}").body, as: UTF8.self), #"{"error":"\u0000"}"#)
    }

    func testJSONResponsesCarryTheirBytesAsGiven() {
        let response = HTTPResponse.json(status: 201, Array(#"{"a":1}"#.utf8))
        XCTAssertEqual(response.status, 201)
        XCTAssertEqual(response.body, Array(#"{"a":1}"#.utf8))
        XCTAssertEqual(response.headers["content-type"], "application/json")
        XCTAssertNil(response.compressionMinimumBytes)
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
}
