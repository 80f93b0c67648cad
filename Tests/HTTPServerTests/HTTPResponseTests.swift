import SparseJSON
import XCTest
@testable import HTTPServer

/// HTTPResponse's error bodies go through SparseJSON's writer: one string escaper in the package.
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
}
