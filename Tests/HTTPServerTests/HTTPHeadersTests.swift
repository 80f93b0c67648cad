import XCTest
@testable import HTTPServer

/// Header fields: arrival order, duplicates, ASCII case-insensitive names (and only ASCII).
final class HTTPHeadersTests: XCTestCase {
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

    /// `set` keeps the first field's position, drops every later duplicate, and spells the name as given.
    func testSetReplacesDuplicatesInPlace() {
        var headers = HTTPHeaders([("A", "1"), ("Vary", "x"), ("B", "2"), ("vary", "y"), ("VARY", "z"), ("C", "3")])
        headers.set(name: "Vary", value: "Accept-Encoding")
        XCTAssertEqual(headers.map(\.name), ["A", "Vary", "B", "C"])
        XCTAssertEqual(headers.map(\.value), ["1", "Accept-Encoding", "2", "3"])
        XCTAssertEqual(headers.description, "A: 1\nVary: Accept-Encoding\nB: 2\nC: 3")
    }

    /// Only ASCII letters fold: non-ASCII bytes and the characters next to A–Z in ASCII stay distinct.
    func testOnlyASCIILettersFold() {
        XCTAssertTrue(HTTPHeaders.namesEqual("X-Request-ID", "x-request-id"))
        XCTAssertFalse(HTTPHeaders.namesEqual("X-Ä", "x-ä"), "non-ASCII letters are compared byte for byte")
        XCTAssertFalse(HTTPHeaders.namesEqual("a@", "a`"), "'@' and '`' differ by the case bit but are not letters")
        XCTAssertFalse(HTTPHeaders.namesEqual("a[", "a{"))
        XCTAssertFalse(HTTPHeaders.namesEqual("ab", "abc"))
        XCTAssertTrue(HTTPHeaders.namesEqual("", ""))
        XCTAssertEqual(HTTPHeaders.asciiLower(UInt8(ascii: "Z")), UInt8(ascii: "z"))
        XCTAssertEqual(HTTPHeaders.asciiLower(UInt8(ascii: "[")), UInt8(ascii: "["))
    }

    func testEmptyHeaders() {
        var headers = HTTPHeaders()
        XCTAssertTrue(headers.isEmpty)
        XCTAssertEqual(headers.values(for: "x"), [])
        headers.remove(name: "x")
        XCTAssertEqual(headers.description, "")
        headers.add(name: "x", value: "")
        XCTAssertFalse(headers.isEmpty)
        XCTAssertEqual(headers["X"], "", "an empty value is still a value")
    }
}
