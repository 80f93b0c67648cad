import SparseJSON
import XCTest
@testable import SparseServe

/// `"compat.tei"`: the model must be an endpoint of the config, `enabled` a boolean, nothing else.
final class CompatConfigTests: XCTestCase {
    private func parse(_ text: String, endpoints: [String] = ["minilm", "digits"]) throws -> CompatConfig {
        try CompatConfig.parse(try JSON.parse(text), endpoints: endpoints)
    }

    func testDefaultsAndSettings() throws {
        XCTAssertEqual(try parse("{}"), CompatConfig())
        XCTAssertNil(CompatConfig().tei.model, "the only loaded text encoder")
        XCTAssertTrue(CompatConfig().tei.enabled)
        let tei = try parse(#"{"tei": {"model": "minilm", "enabled": false}}"#).tei
        XCTAssertEqual(tei.model, "minilm")
        XCTAssertFalse(tei.enabled)
    }

    func testRefusalsNameTheField() {
        let cases: [(String, String, String)] = [
            (#"{"tei": {"model": "bert"}}"#, "compat.tei.model", "'bert' is not an endpoint of this config (minilm, digits)"),
            (#"{"tei": {"enabled": "yes"}}"#, "compat.tei.enabled", "must be true or false"),
            (#"{"tei": {"port": 8080}}"#, "compat.tei.port", "unknown key"),
            (#"{"openai": {}}"#, "compat.openai", "unknown key"),
            (#"{"tei": []}"#, "compat.tei", "must be an object"),
            ("[]", "compat", "must be an object"),
        ]
        for (text, field, reason) in cases {
            XCTAssertThrowsError(try parse(text), text) { error in
                let e = error as? ConfigError
                XCTAssertEqual(e?.field, field, text)
                XCTAssertTrue(e?.reason.contains(reason) ?? false, "\(text): \(error)")
            }
        }
    }
}
