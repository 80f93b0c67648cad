import SparseJSON
import SparseModels
import XCTest
@testable import SparseServe

final class ResponseErrorTests: XCTestCase {
    struct Unexpected: Error {}

    func testEveryKnownErrorDescribesItsAnswer() throws {
        let cases: [(any Error, Int, String, FailureReason)] = [
            (ProtocolError(404, "unknown model 'x'"), 404, "unknown model 'x'", .invalidInput),
            (ProtocolError(503, "busy"), 503, "busy", .internal),
            (ProtocolError(503, "late", reason: .timeout), 503, "late", .timeout),
            (ConfigError(field: "endpoints[0].name", reason: "is required"), 400, "config: endpoints[0].name: is required", .invalidInput),
            (InvalidInputError("bad shape"), 400, "bad shape", .invalidInput),
        ]
        for (error, status, message, reason) in cases {
            let described = ResponseErrors.describe(error)
            XCTAssertEqual(described.status, status, "\(error)")
            XCTAssertEqual(described.message, message)
            XCTAssertEqual(described.reason, reason)
        }
        do {
            _ = try JSON.parse("{")
            XCTFail("parsed")
        } catch {
            let described = ResponseErrors.describe(error)
            XCTAssertEqual(described.status, 400)
            XCTAssertTrue(described.message.hasPrefix("malformed JSON body: invalid JSON at byte"), described.message)
        }
        let unknown = ResponseErrors.describe(Unexpected())
        XCTAssertEqual(unknown.status, 500)
        XCTAssertEqual(unknown.reason, .internal)
        let response = ResponseErrors.response(ProtocolError(422, "too long"))
        XCTAssertEqual(response.status, 422)
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), #"{"error":"too long"}"#)
    }
}
