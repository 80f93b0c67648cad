import Foundation
import XCTest
@testable import SparseModels

/// The `"encoder"` block: optional keys over the defaults, unknown keys refused; head size.
final class BertConfigTests: XCTestCase {
    private func block(_ json: String) throws -> BertEncoderOptions.Block {
        try JSONDecoder().decode(BertEncoderOptions.Block.self, from: Data(json.utf8))
    }

    func testBlockOverridesOnlyWhatItSets() throws {
        let defaults = BertEncoderOptions(pooling: .mean, normalize: true, maxTokens: 256, lowercase: true)
        XCTAssertEqual(defaults.overridden(by: nil), defaults)
        XCTAssertEqual(defaults.overridden(by: try block("{}")), defaults)
        XCTAssertEqual(defaults.overridden(by: try block(#"{"pooling": "cls", "maxTokens": 128}"#)),
                       BertEncoderOptions(pooling: .cls, normalize: true, maxTokens: 128, lowercase: true))
        XCTAssertEqual(defaults.overridden(by: try block(#"{"normalize": false, "lowercase": false}"#)),
                       BertEncoderOptions(pooling: .mean, normalize: false, maxTokens: 256, lowercase: false))
    }

    func testBlockRefusals() {
        for (json, fragment) in [(#"{"pooling": "max"}"#, "pooling"), (#"{"maxLength": 3}"#, "unknown key 'maxLength'"),
                                 (#"{"normalize": "yes"}"#, "normalize")] {
            XCTAssertThrowsError(try block(json), json) { error in
                let message = (error as? DecodingError)?.conciseDescription ?? "\(error)"
                XCTAssertTrue(message.contains(fragment), message)
            }
        }
    }

    func testShape() {
        let config = BertConfig(hiddenSize: 384, layers: 6, heads: 12, intermediateSize: 1536, layerNormEpsilon: 1e-12, maxPositions: 512,
                                vocabularySize: 30522, typeVocabularySize: 2)
        XCTAssertEqual(config.headDimension, 32)
        XCTAssertEqual(BertEncoderOptions().maxTokens, 512)
        XCTAssertEqual(BertEncoderOptions().pooling, .mean)
    }
}
