import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// `GET /v1/models[/{id}]` with endpoints that are not text encoders (identity, digits): none is
/// listed, every id is a 404 in OpenAI's shape with long ids cut, and the model object's fields.
/// (test_openai_models.py lists MiniLM with the openai client.)
final class OpenAIModelsTests: XCTestCase {
    private func route(_ service: InferenceService) -> OpenAIModelsRoute {
        let auth = APIKeyAuth(serverKeys: [], publicGroups: [], endpointKeys: { _ in [] })
        return OpenAIModelsRoute(service: service, auth: auth)
    }

    func testOnlyTextEmbeddingEndpointsAreListed() throws {
        let service = try startedService(self)
        let list = try body(route(service).list(HTTPRequest(target: "/v1/models")))
        XCTAssertEqual(list["object"]?.stringValue, "list")
        XCTAssertEqual(list["data"]?.arrayValue?.count, 0, "identity and digits are not text-embedding models")
        let digits = route(service).retrieve("digits")
        XCTAssertEqual(digits.status, 404)
        XCTAssertEqual(try body(digits)["error"]?["message"]?.stringValue,
                       "unknown model 'digits': GET /v1/models lists the text-embedding endpoints")
        XCTAssertEqual(try body(digits)["error"]?["type"]?.stringValue, "not_found_error")
    }

    func testLongIDsAreCutInTheMessage() throws {
        let service = try startedService(self)
        let id = String(repeating: "x", count: 500)
        let message = try body(route(service).retrieve(id))["error"]?["message"]?.stringValue ?? ""
        XCTAssertTrue(message.contains("'" + String(repeating: "x", count: OpenAIModelsRoute.maxIDLength) + "…'"), message)
        XCTAssertFalse(message.contains(String(repeating: "x", count: OpenAIModelsRoute.maxIDLength + 1)))
    }

    func testModelObject() throws {
        let service = try startedService(self)
        let endpoint = try XCTUnwrap(service.endpoints.first { $0.name == "digits" })
        let object = OpenAIModelsRoute.object(endpoint)
        XCTAssertEqual(object["id"]?.stringValue, "digits")
        XCTAssertEqual(object["object"]?.stringValue, "model")
        XCTAssertEqual(object["owned_by"]?.stringValue, "sparse-serve")
        XCTAssertEqual(object["created"]?.integerValue, Int64(endpoint.loadedAt.timeIntervalSince1970))
    }
}
