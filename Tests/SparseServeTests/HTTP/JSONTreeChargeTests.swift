import Foundation
@testable import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// JSONTreeCharge: the parsed tree a JSON body becomes is charged to the body memory budget
/// before parsing; when it does not fit the answer is 503 with Retry-After.
final class JSONTreeChargeTests: XCTestCase {
    func request(_ body: Int, headerLength: String? = nil, account: HTTPBodyAccount?) -> HTTPRequest {
        var r = HTTPRequest(method: "POST", target: "/v2/models/m/infer",
                            headers: HTTPHeaders(headerLength.map { [("Inference-Header-Content-Length", $0)] } ?? []),
                            body: [UInt8](repeating: 0x20, count: body))
        r.bodyAccount = account
        return r
    }

    func testTheTreeIsChargedPerJSONByteUntilTheBudgetIsFull() throws {
        let per = JSONTreeCharge.bytesPerJSONByte
        let budget = HTTPMemoryBudget(limit: 150 * per)
        let account = HTTPBodyAccount(budget: budget)
        XCTAssertNil(JSONTreeCharge.refusal(request(100, account: account)))
        XCTAssertEqual(budget.reservedBytes, 100 * per)
        // Only the JSON header of a binary-extension body counts.
        XCTAssertNil(JSONTreeCharge.refusal(request(10_000, headerLength: "40", account: account)))
        XCTAssertEqual(account.heldBytes, 140 * per)
        let refused = try XCTUnwrap(JSONTreeCharge.refusal(request(11, account: account)))
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.headers["Retry-After"], "1")
        XCTAssertTrue(try JSON.parse(refused.body)["error"]?.stringValue?.contains("to parse 11 bytes of JSON now") == true)
        XCTAssertEqual(account.heldBytes, 140 * per, "a refused charge reserves nothing")
        XCTAssertNil(JSONTreeCharge.refusal(request(10, account: account)), "what still fits is charged")
    }

    func testLengthsAreClampedAndRequestsWithoutAnAccountPass() {
        XCTAssertNil(JSONTreeCharge.refusal(request(1 << 20, account: nil)))
        let account = HTTPBodyAccount(budget: HTTPMemoryBudget(limit: 1 << 20))
        XCTAssertNil(JSONTreeCharge.refusal(request(8, headerLength: "999999999999", account: account)))
        XCTAssertEqual(account.heldBytes, 8 * JSONTreeCharge.bytesPerJSONByte, "a header length past the body counts the body")
        XCTAssertNil(JSONTreeCharge.refusal(request(8, headerLength: "-5", account: account)))
        XCTAssertEqual(account.heldBytes, 8 * JSONTreeCharge.bytesPerJSONByte, "a negative length counts nothing")
    }
}
