import HTTPServer
import SparseJSON
import XCTest
@testable import SparseServe

/// TEI request bodies (embed, similarity, tokenize, decode) and their validation errors, without sockets.
final class TEIRequestsTests: XCTestCase {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func assertStatus(_ status: Int, _ fragment: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let e = error as? ProtocolError
            XCTAssertEqual(e?.status, status, "\(error)", file: file, line: line)
            XCTAssertTrue(e?.message.contains(fragment) ?? false, "\(error)", file: file, line: line)
        }
    }

    func testEmbedBodies() throws {
        let one = try TEIRequests.embed(bytes(#"{"inputs": "hi"}"#))
        XCTAssertEqual(one.inputs.count, 1)
        XCTAssertTrue(one.normalize)
        XCTAssertFalse(one.truncation.enabled)
        XCTAssertEqual(one.truncation.side, .right)
        XCTAssertEqual(one.truncation.status, 413, "over the limit without truncation is TEI's 413")
        let many = try TEIRequests.embed(bytes(#"{"inputs": ["a", [101, 7592, 102]], "normalize": false, "truncate": true, "truncation_direction": "Left"}"#))
        XCTAssertEqual(many.inputs.count, 2)
        guard case .tokens(let ids) = many.inputs[1] else { return XCTFail("token ids expected") }
        XCTAssertEqual(ids, [101, 7592, 102])
        XCTAssertFalse(many.normalize)
        XCTAssertTrue(many.truncation.enabled)
        XCTAssertEqual(many.truncation.side, .left)
        XCTAssertEqual(try TEIRequests.embed(bytes(#"{"inputs": [5, 6], "truncate": null}"#)).inputs.count, 1, "a list of ids is one input")
    }

    func testBadEmbedBodiesAreTEIValidationErrors() {
        assertStatus(422, "empty") { _ = try TEIRequests.embed(self.bytes(#"{"inputs": ""}"#)) }
        assertStatus(422, "empty") { _ = try TEIRequests.embed(self.bytes(#"{"inputs": []}"#)) }
        assertStatus(422, "'inputs'") { _ = try TEIRequests.embed(self.bytes(#"{"inputs": 5}"#)) }
        assertStatus(422, "'inputs' is required") { _ = try TEIRequests.embed(self.bytes(#"{"input": "x"}"#)) }
        assertStatus(422, "'normalize'") { _ = try TEIRequests.embed(self.bytes(#"{"inputs": "x", "normalize": "no"}"#)) }
        assertStatus(422, "truncation_direction") { _ = try TEIRequests.embed(self.bytes(#"{"inputs": "x", "truncation_direction": 1}"#)) }
        assertStatus(422, "prompt_name") { _ = try TEIRequests.embed(self.bytes(#"{"inputs": "x", "prompt_name": "q"}"#)) }
        assertStatus(422, "JSON object") { _ = try TEIRequests.embed(self.bytes("[1]")) }
        assertStatus(400, "malformed JSON") { _ = try TEIRequests.embed(self.bytes("{")) }
    }

    func testSimilarityTokenizeAndDecodeBodies() throws {
        let s = try TEIRequests.similarity(bytes(#"{"inputs": {"source_sentence": "a", "sentences": ["b", "c"]}, "parameters": {"truncate": true}}"#))
        XCTAssertEqual(s.source, bytes("a"))
        XCTAssertEqual(s.sentences, [bytes("b"), bytes("c")])
        XCTAssertTrue(s.truncation.enabled)
        assertStatus(422, "inputs.sentences") { _ = try TEIRequests.similarity(self.bytes(#"{"inputs": {"source_sentence": "a", "sentences": []}}"#)) }
        assertStatus(422, "source_sentence") { _ = try TEIRequests.similarity(self.bytes(#"{"inputs": {"sentences": ["b"]}}"#)) }
        let t = try TEIRequests.tokenize(bytes(#"{"inputs": "hello", "add_special_tokens": false}"#))
        XCTAssertEqual(t.texts, [bytes("hello")])
        XCTAssertFalse(t.addSpecialTokens)
        assertStatus(422, "inputs[1]") { _ = try TEIRequests.tokenize(self.bytes(#"{"inputs": ["a", 2]}"#)) }
        XCTAssertEqual(try TEIRequests.decode(bytes(#"{"ids": [1, 2]}"#)).ids, [[1, 2]])
        let d = try TEIRequests.decode(bytes(#"{"ids": [[1], [2, 3]], "skip_special_tokens": false}"#))
        XCTAssertEqual(d.ids, [[1], [2, 3]])
        XCTAssertFalse(d.skipSpecialTokens)
        assertStatus(422, "ids[1]") { _ = try TEIRequests.decode(self.bytes(#"{"ids": [1, -2]}"#)) }
        assertStatus(422, "'ids'") { _ = try TEIRequests.decode(self.bytes(#"{"ids": []}"#)) }
    }
}
