import HTTPServer
import XCTest
@testable import SparseServe

final class MethodCheckTests: XCTestCase {
    func testWrongMethodsGet405WithAllow() throws {
        let answer = try pass(MethodCheck(), request("GET", "/v2/models/m/infer")).answer
        XCTAssertEqual(answer?.status, 405)
        XCTAssertEqual(answer?.headers["allow"], "POST")
        XCTAssertNil(try pass(MethodCheck(), request("POST", "/v2/models/m/infer")).answer)
        XCTAssertNil(try pass(MethodCheck(), request("HEAD", "/v2/health/live")).answer)
        XCTAssertNil(try pass(MethodCheck(), request("DELETE", "/nowhere")).answer, "no route: the router answers 404")
    }
}
