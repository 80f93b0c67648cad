import HTTPServer
import XCTest
@testable import SparseServe

final class APIKeyAuthTests: XCTestCase {
    let auth = APIKeyAuth(serverKeys: ["server-key"], publicGroups: [.health], endpointKeys: { $0 == "m" ? ["m-key"] : [] })

    func status(_ path: String, _ key: String?, _ auth: APIKeyAuth? = nil, method: String = "GET") throws -> Int {
        let headers = key.map { [("Authorization", "Bearer \($0)")] } ?? []
        return try pass(auth ?? self.auth, request(method, path, headers)).answer?.status ?? 200
    }

    func testServerKeysOpenEverythingEndpointKeysOnlyTheirOwnModel() throws {
        XCTAssertEqual(try status("/v2/models/m/infer", "server-key"), 200)
        XCTAssertEqual(try status("/v2/models/m/infer", "m-key"), 200)
        XCTAssertEqual(try status("/v2/models/m/versions/1/infer", "m-key"), 200)
        XCTAssertEqual(try status("/v2/models/other/infer", "m-key"), 401)
        XCTAssertEqual(try status("/v2/models/m/infer", nil), 401)
        XCTAssertEqual(try status("/v2/models/m/infer", "wrong"), 401)
        // Repository actions take admin keys only; RequestGate checks them from the head
        // (SecuritySettingsTests), so this step lets them through.
        XCTAssertEqual(try status("/v2/repository/models/m/unload", "m-key"), 200)
        XCTAssertEqual(try status("/metrics", "m-key"), 401)
    }

    func testPublicGroupsBodyNamedRoutesAndNoKeys() throws {
        XCTAssertEqual(try status("/v2/health/live", nil), 200)
        XCTAssertEqual(try status("/v1/embeddings", nil, method: "POST"), 200, "checked by the handler once the body names the model")
        let open = APIKeyAuth(serverKeys: [], publicGroups: [], endpointKeys: { _ in [] })
        XCTAssertEqual(try status("/v2/models/m/infer", nil, open), 200)
        let answer = try pass(auth, request("GET", "/v2/models/m", [])).answer
        XCTAssertEqual(answer?.headers["www-authenticate"], "Bearer realm=\"sparse-serve\"")
        XCTAssertFalse(auth.isAuthorized("Basic server-key", model: nil))
        XCTAssertTrue(auth.isAuthorized("bearer  server-key ", model: nil))
    }
}
