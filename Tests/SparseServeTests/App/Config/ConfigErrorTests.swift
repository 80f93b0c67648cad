import XCTest
@testable import SparseServe

/// Config errors read "config: FIELD: REASON", or "config: REASON" for the document as a whole.
final class ConfigErrorTests: XCTestCase {
    func testDescriptions() {
        XCTAssertEqual("\(ConfigError(field: "server.port", reason: "70000 is out of range 0...65535"))",
                       "config: server.port: 70000 is out of range 0...65535")
        XCTAssertEqual("\(ConfigError(field: "", reason: "invalid JSON at byte 3"))", "config: invalid JSON at byte 3")
    }

    /// A config file's errors come out in this form from parsing, field path included.
    func testParsedErrorsUseIt() {
        XCTAssertThrowsError(try ServiceConfig.parse(Array(#"{"server": {"port": "80"}, "endpoints": [{"name": "d", "model": "m"}]}"#.utf8), baseDirectory: "/")) { error in
            XCTAssertEqual("\(error)", "config: server.port: must be an integer, got a string")
        }
    }
}
