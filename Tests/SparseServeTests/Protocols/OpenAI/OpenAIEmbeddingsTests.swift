import SparseJSON
import SparseModels
import XCTest
@testable import SparseServe

/// `POST /v1/embeddings` bodies read before any model work (every input form, options, refusals
/// naming the field), which models have the text-embedding signature, and OpenAI's error shape.
/// (test_embeddings_api.py runs the route against MiniLM with the openai client.)
final class OpenAIEmbeddingsTests: XCTestCase {
    private func parse(_ text: String) throws -> OpenAIEmbeddings.Request { try OpenAIEmbeddings.parse(Array(text.utf8)) }

    private func refusal(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return (error as? ProtocolError).map { "\($0.status) \($0.message)" } ?? "\(error)" }
    }

    private func describe(_ inputs: [TextInput]) -> [String] {
        inputs.map {
            switch $0 {
            case .text(let bytes): return "text:" + String(decoding: bytes, as: UTF8.self)
            case .tokens(let ids): return "ids:" + ids.map(String.init).joined(separator: ",")
            }
        }
    }

    func testInputForms() throws {
        XCTAssertEqual(describe(try parse(#"{"model": "m", "input": "hi"}"#).inputs), ["text:hi"])
        XCTAssertEqual(describe(try parse(#"{"model": "m", "input": ["a", "b"]}"#).inputs), ["text:a", "text:b"])
        XCTAssertEqual(describe(try parse(#"{"model": "m", "input": [101, 7, 102]}"#).inputs), ["ids:101,7,102"], "one input of ids")
        XCTAssertEqual(describe(try parse(#"{"model": "m", "input": [[1, 2], "c", [3]]}"#).inputs), ["ids:1,2", "text:c", "ids:3"])
        let request = try parse(#"{"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 384, "truncate": true}"#)
        XCTAssertTrue(request.base64)
        XCTAssertEqual(request.dimensions, 384)
        XCTAssertTrue(request.truncate)
        let plain = try parse(#"{"model": "m", "input": "x", "encoding_format": "float"}"#)
        XCTAssertFalse(plain.base64)
        XCTAssertNil(plain.dimensions)
        XCTAssertFalse(plain.truncate)
    }

    func testRefusalsNameTheField() {
        let cases: [(String, String)] = [
            ("{", "400 malformed JSON body"),
            ("[]", "400 the body must be a JSON object"),
            (#"{"input": "x"}"#, "400 'model' is required"),
            (#"{"model": "", "input": "x"}"#, "400 'model' is required"),
            (#"{"model": "m"}"#, "400 'input' is required"),
            (#"{"model": "m", "input": ""}"#, "400 'input' must not be an empty string"),
            (#"{"model": "m", "input": []}"#, "400 'input' must not be an empty array"),
            (#"{"model": "m", "input": 5}"#, "400 'input' must be a string, an array of strings or an array of token-id arrays, got a number"),
            (#"{"model": "m", "input": ["a", ""]}"#, "400 'input[1]' must not be an empty string"),
            (#"{"model": "m", "input": ["a", true]}"#, "400 'input[1]' must be a string or an array of token ids, got a boolean"),
            (#"{"model": "m", "input": [1, -2]}"#, "400 'input[1]' must be a non-negative integer token id"),
            (#"{"model": "m", "input": [[1], []]}"#, "400 'input[1]' must not be an empty token array"),
            (#"{"model": "m", "input": [[1, 4294967296]]}"#, "400 'input[0][1]' must be a non-negative integer token id"),
            (#"{"model": "m", "input": "x", "encoding_format": "int8"}"#, "400 'encoding_format' must be 'float' or 'base64'"),
            (#"{"model": "m", "input": "x", "dimensions": 0}"#, "400 'dimensions' must be a positive integer"),
            (#"{"model": "m", "input": "x", "truncate": "yes"}"#, "400 'truncate' must be true or false"),
        ]
        for (text, expected) in cases {
            let got = refusal(text) ?? "accepted"
            XCTAssertTrue(got.hasPrefix(expected), "\(text): \(got)")
        }
    }

    /// TEI's routes read inputs with their own field name and status.
    func testInputsUnderAnotherNameAndStatus() {
        XCTAssertThrowsError(try OpenAIEmbeddings.inputs(.array([]), name: "inputs", status: 422)) { error in
            XCTAssertEqual((error as? ProtocolError)?.status, 422)
            XCTAssertEqual((error as? ProtocolError)?.message, "'inputs' must not be an empty array")
        }
    }

    func testSignatureAndErrorShape() throws {
        let text = TensorSpec(name: "text", datatype: .bytes, shape: [-1])
        let embedding = TensorSpec(name: "embedding", datatype: .fp32, shape: [-1, 384])
        let encoder = try IdentityModel(inputs: [text], outputs: [TensorSpec(name: "echo", datatype: .bytes, shape: [-1])])
        XCTAssertThrowsError(try OpenAIEmbeddings.signature(encoder, name: "echo")) { error in
            XCTAssertEqual((error as? ProtocolError)?.message,
                           "model 'echo' is not a text-embedding model (it needs one BYTES [-1] input and an FP32 [-1, d] output)")
        }
        let mixed = try IdentityModel(inputs: [text, TensorSpec(name: "v", datatype: .fp32, shape: [-1, 384])],
                                      outputs: [TensorSpec(name: "t", datatype: .bytes, shape: [-1]), embedding])
        XCTAssertThrowsError(try OpenAIEmbeddings.signature(mixed, name: "two inputs"))
        for (status, type) in [(401, "authentication_error"), (404, "not_found_error"), (429, "rate_limit_error"), (422, "invalid_request_error"),
                               (503, "server_error")] {
            let response = OpenAIEmbeddings.error(status, "why")
            XCTAssertEqual(response.status, status)
            let error = try JSON.parse(response.body)["error"]
            XCTAssertEqual(error?["type"]?.stringValue, type)
            XCTAssertEqual(error?["message"]?.stringValue, "why")
            XCTAssertEqual(error?["param"], JSON.null)
            XCTAssertEqual(error?["code"], JSON.null)
        }
    }
}
