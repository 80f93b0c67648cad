import HTTPServer
import XCTest
@testable import SparseServe

final class RequestIDsTests: XCTestCase {
    func testKeepsAShortVisibleIDAndReplacesOthers() throws {
        let given = try pass(RequestIDs(), request("GET", "/v2", [("X-Request-ID", "abc-123")]))
        XCTAssertNil(given.answer)
        XCTAssertEqual(given.passed.headers["x-request-id"], "abc-123")
        for bad in ["", "has space", String(repeating: "a", count: 201), "caf\u{e9}"] {
            let id = try pass(RequestIDs(), request("GET", "/v2", [("X-Request-ID", bad)])).passed.headers["x-request-id"] ?? ""
            XCTAssertEqual(id.count, 32, bad)
            XCTAssertTrue(id.allSatisfy { $0.isHexDigit }, id)
        }
        let fresh = try pass(RequestIDs(), request("GET", "/nowhere")).passed.headers["x-request-id"]
        XCTAssertNotEqual(fresh, try pass(RequestIDs(), request("GET", "/nowhere")).passed.headers["x-request-id"])
    }
}
