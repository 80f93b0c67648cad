import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// TEI's error body ({"error", "error_type"}) and its status mapping (queue full → 429, failed inference → 424).
final class TEIErrorsTests: XCTestCase {
    func testErrorShapeAndStatuses() throws {
        let r = TEIErrors.response(413, "too many")
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(try JSON.parse(r.body), .object([("error", .string("too many")), ("error_type", .string("validation"))]))
        XCTAssertEqual(TEIErrors.pipeline(503, "queue full").status, 429, "a full or timed-out queue is TEI's overloaded")
        XCTAssertEqual(TEIErrors.type(429), "overloaded")
        XCTAssertEqual(TEIErrors.pipeline(500, "boom").status, 424, "a failed inference is TEI's backend error")
        XCTAssertEqual(TEIErrors.type(424), "backend")
        XCTAssertEqual(TEIErrors.type(503), "unhealthy")
        XCTAssertEqual(TEIErrors.type(401), "unauthorized")
        XCTAssertEqual(TEIErrors.response(ProtocolError(422, "bad")).status, 422)
    }
}
