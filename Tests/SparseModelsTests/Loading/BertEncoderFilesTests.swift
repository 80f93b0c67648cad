import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// BertEncoderFiles: Hugging Face's config.json (checked, refusals naming the key) and the
/// sentence-transformers files that complete the encoder options.
final class BertEncoderFilesTests: XCTestCase {
    func folder(_ files: [String: String]) throws -> ModelFolder {
        try ModelFolder(self, manifest: "{}", files: files)
    }

    func testConfigIsReadWithItsShapeAndEpsilon() throws {
        let model = try folder(["config.json": BertEncoderLoaderTests.config()])
        let config = try BertEncoderFiles.config(at: model.path + "/config.json")
        XCTAssertEqual(config, BertConfig(hiddenSize: 4, layers: 1, heads: 2, intermediateSize: 8, layerNormEpsilon: 1e-12,
                                          maxPositions: 16, vocabularySize: 9, typeVocabularySize: 2))
        XCTAssertEqual(config.headDimension, 2)
    }

    func testConfigRefusalsNameTheFileAndKey() throws {
        let valid = BertEncoderLoaderTests.config()
        func replacing(_ a: String, _ b: String) -> String {
            precondition(valid.contains(a))
            return valid.replacingOccurrences(of: a, with: b)
        }
        let cases: [(String, String)] = [
            ("[1, 2]", "not a JSON object"),
            ("{\"hidden_size\": 4", "not a JSON object"),
            (replacing(#""num_attention_heads": 2"#, #""num_attention_heads": 0"#), "'num_attention_heads' must be a positive integer"),
            (replacing(#""vocab_size": 9"#, #""vocab_size": "9""#), "'vocab_size' must be a positive integer"),
            (replacing(#""num_attention_heads": 2"#, #""num_attention_heads": 3"#), "hidden_size 4 is not a multiple of num_attention_heads 3"),
            (replacing(#""layer_norm_eps": 1e-12"#, #""layer_norm_eps": 0"#), "'layer_norm_eps' must be a positive number"),
            (replacing(#""hidden_act": "gelu""#, #""hidden_act": "gelu_new""#), "hidden_act 'gelu_new' is not supported"),
            (replacing(#""model_type""#, #""position_embedding_type": "relative_key", "model_type""#),
             "position_embedding_type 'relative_key' is not supported"),
        ]
        for (text, fragment) in cases {
            let model = try folder(["config.json": text])
            assertError(try BertEncoderFiles.config(at: model.path + "/config.json"), contains: [fragment, "config.json"])
        }
        assertError(try BertEncoderFiles.config(at: "/nonexistent/config.json"),
                    contains: ["/nonexistent/config.json", "does not exist or cannot be read"])
    }

    func testOptionsComeFromTheSentenceTransformersFilesThenTheManifestBlock() throws {
        let defaults = try folder([:])
        XCTAssertEqual(BertEncoderFiles.options(nil, directory: defaults.path, maxPositions: 16),
                       BertEncoderOptions(pooling: .mean, normalize: false, maxTokens: 16, lowercase: true))
        let files = try folder([
            "1_Pooling/config.json": #"{"pooling_mode_cls_token": true}"#,
            "modules.json": #"[{"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Normalize"}]"#,
            "sentence_bert_config.json": #"{"max_seq_length": 12}"#,
            "tokenizer_config.json": #"{"do_lower_case": false, "model_max_length": 512}"#,
        ])
        XCTAssertEqual(BertEncoderFiles.options(nil, directory: files.path, maxPositions: 16),
                       BertEncoderOptions(pooling: .cls, normalize: true, maxTokens: 12, lowercase: false))
        let block = try JSONDecoder().decode(BertEncoderOptions.Block.self, from: Data(#"{"pooling": "mean", "maxTokens": 6}"#.utf8))
        XCTAssertEqual(BertEncoderFiles.options(block, directory: files.path, maxPositions: 16),
                       BertEncoderOptions(pooling: .mean, normalize: true, maxTokens: 6, lowercase: false))
    }

    /// Files that are not what they should be are passed over, never fatal: the defaults stand.
    func testUnreadableOptionalFilesFallBackToDefaults() throws {
        let model = try folder([
            "1_Pooling/config.json": "not json",
            "modules.json": #"{"type": "sentence_transformers.models.Normalize"}"#,  // an object, not the list
            "sentence_bert_config.json": #"{"max_seq_length": "12"}"#,
            "tokenizer_config.json": #"{"do_lower_case": 0}"#,
        ])
        XCTAssertEqual(BertEncoderFiles.options(nil, directory: model.path, maxPositions: 16),
                       BertEncoderOptions(pooling: .mean, normalize: false, maxTokens: 16, lowercase: true))
    }
}
