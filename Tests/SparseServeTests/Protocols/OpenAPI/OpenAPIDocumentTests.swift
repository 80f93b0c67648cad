import Foundation
import XCTest
@testable import SparseServe

/// The served OpenAPI document is the repository's `openapi.yaml` byte for byte (embedded by
/// SwiftPM at build time, so there is no second copy to keep in step), as YAML.
final class OpenAPIDocumentTests: XCTestCase {
    func testServedDocumentIsTheFile() throws {
        let path = packageRoot() + "/Sources/SparseServe/Protocols/OpenAPI/openapi.yaml"
        let file = try XCTUnwrap(FileManager.default.contents(atPath: path))
        XCTAssertEqual(OpenAPIDocument.yaml, Array(file))
        let topLevel = try XCTUnwrap(FileManager.default.contents(atPath: packageRoot() + "/openapi.yaml"))
        XCTAssertEqual(Array(topLevel), Array(file), "the top-level openapi.yaml is the same document")
        let response = OpenAPIDocument.response()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["Content-Type"], "application/yaml; charset=utf-8")
        XCTAssertEqual(response.body, OpenAPIDocument.yaml)
    }
}
