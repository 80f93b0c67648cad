import SparseModels
import XCTest
@testable import SparseServe

/// Server-side tokenization limits without a real tokenizer: a byte-per-token model stands in, so
/// the counts are exact. Input count (413), token limit (422 or cut when asked, right or left,
/// [CLS]/[SEP] kept), the text byte ceiling at character boundaries, and -1 padding.
final class TextInputsTests: XCTestCase {
    /// One token per UTF-8 byte, between [CLS] = 101 and [SEP] = 102; ids must be below 1000.
    private struct ByteModel: TextEncodingModel {
        var maxTokens = 8
        var architecture: String { "bytes" }
        var inputs: [TensorSpec] { [TensorSpec(name: "text", datatype: .bytes, shape: [-1])] }
        var outputs: [TensorSpec] { [] }
        func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] { [:] }
        func tokenize(utf8: [UInt8], limit: Int?) throws -> (ids: [Int32], fullCount: Int) {
            guard String(validating: utf8, as: UTF8.self) != nil else { throw InvalidInputError("invalid UTF-8") }
            return cut([101] + utf8.map { Int32($0) } + [102], limit)
        }
        func prepare(tokenIDs: [Int32], limit: Int?) throws -> (ids: [Int32], fullCount: Int) {
            if let bad = tokenIDs.first(where: { $0 < 0 || $0 >= 1000 }) { throw InvalidInputError("token id \(bad) is not in the vocabulary") }
            var ids = tokenIDs
            if ids.first != 101 { ids.insert(101, at: 0) }
            if ids.last != 102 { ids.append(102) }
            return cut(ids, limit)
        }
        private func cut(_ ids: [Int32], _ limit: Int?) -> (ids: [Int32], fullCount: Int) {
            guard let limit, ids.count > limit else { return (ids, ids.count) }
            return (Array(ids.prefix(limit - 1)) + [102], ids.count)
        }
    }

    private var config: EndpointConfig {
        var config = EndpointConfig(name: "enc", modelPath: "/m")
        config.maxInputs = 3
        return config
    }

    private func text(_ s: String) -> TextInput { .text(Array(s.utf8)) }

    private func failure(_ body: () throws -> Any) -> (Int, String)? {
        do { _ = try body(); return nil } catch let e as ProtocolError { return (e.status, e.message) } catch { return (0, "\(error)") }
    }

    func testSequencesWithinTheLimitArePaddedWithMinusOne() throws {
        let (tensor, tokens) = try TextInputs.tokenIDs([text("ab"), .tokens([7])], model: ByteModel(), endpoint: config,
                                                       truncate: false, parameter: "input")
        XCTAssertEqual(tensor.shape, [2, 8])
        XCTAssertEqual(tensor.storage, .int32([101, 97, 98, 102, -1, -1, -1, -1,
                                               101, 7, 102, -1, -1, -1, -1, -1]))
        XCTAssertEqual(tokens, 7)
    }

    func testTooManyInputsIs413() {
        let items = [TextInput](repeating: text("a"), count: 4)
        let f = failure { try TextInputs.tokenIDs(items, model: ByteModel(), endpoint: self.config, truncate: true, parameter: "input") }
        XCTAssertEqual(f?.0, 413)
        XCTAssertEqual(f?.1, "at most 3 inputs per request for model 'enc', got 4")
    }

    func testOverTheLimitIs422UnlessTruncated() throws {
        let long = text("abcdefghij")  // 12 tokens with [CLS]/[SEP], limit 8
        let f = failure { try TextInputs.tokenIDs([self.text("a"), long], model: ByteModel(), endpoint: self.config, truncate: false, parameter: "input") }
        XCTAssertEqual(f?.0, 422)
        XCTAssertTrue(f?.1.hasPrefix("input[1] has 12 tokens; model 'enc' takes at most 8 per input") ?? false, f?.1 ?? "")
        let right = try TextInputs.sequences([long], model: ByteModel(), endpoint: config,
                                             truncation: .init(enabled: true, side: .right), parameter: "input")
        XCTAssertEqual(right, [[101, 97, 98, 99, 100, 101, 102, 102]], "[CLS] + the first 6 bytes + [SEP]")
        let left = try TextInputs.sequences([long], model: ByteModel(), endpoint: config,
                                            truncation: .init(enabled: true, side: .left), parameter: "input")
        XCTAssertEqual(left, [[101, 101, 102, 103, 104, 105, 106, 102]], "[CLS] + the last 6 bytes (e…j) + [SEP]")
    }

    /// The endpoint may lower the model's limit, never raise it; a status other than 422 can be asked for.
    func testEndpointLimitAndStatus() throws {
        var lower = config
        lower.maxTokensPerInput = 4
        XCTAssertEqual(TextInputs.tokenLimit(ByteModel(), lower), 4)
        lower.maxTokensPerInput = 100
        XCTAssertEqual(TextInputs.tokenLimit(ByteModel(), lower), 8)
        lower.maxTokensPerInput = 4
        let f = failure { try TextInputs.sequences([self.text("abc")], model: ByteModel(), endpoint: lower,
                                                   truncation: .init(enabled: false, side: .right, status: 413), parameter: "inputs") }
        XCTAssertEqual(f?.0, 413)
        XCTAssertTrue(f?.1.hasPrefix("inputs[0] has 5 tokens") ?? false)
    }

    func testModelRefusalsAre400NamingTheInput() {
        let bad = failure { try TextInputs.tokenIDs([self.text("ok"), .tokens([5, 5000])], model: ByteModel(), endpoint: self.config,
                                                    truncate: true, parameter: "input") }
        XCTAssertEqual(bad?.0, 400)
        XCTAssertEqual(bad?.1, "input[1]: token id 5000 is not in the vocabulary")
        let utf8 = failure { try TextInputs.tokenIDs([.text([0xC3])], model: ByteModel(), endpoint: self.config, truncate: false, parameter: "input") }
        XCTAssertEqual(utf8?.0, 400)
    }

    /// Text beyond limit × 64 bytes is refused before tokenizing, or cut at a character boundary.
    func testTextByteCeiling() throws {
        let limit = 1, ceiling = TextInputs.textBytesPerToken  // 64 bytes
        let fits = [UInt8](repeating: 0x61, count: ceiling)
        XCTAssertEqual(try TextInputs.boundedText(fits, limit: limit, truncate: false, name: "t", model: "m"), fits)
        let over = fits + [0x61]
        XCTAssertThrowsError(try TextInputs.boundedText(over, limit: limit, truncate: false, name: "t", model: "m")) { error in
            XCTAssertEqual((error as? ProtocolError)?.status, 422)
            XCTAssertTrue("\(error)".contains("t is 65 bytes of text"), "\(error)")
        }
        // "é" (2 bytes) straddling the ceiling: the right cut drops it whole, the left cut skips its tail.
        let straddling = [UInt8](repeating: 0x61, count: ceiling - 1) + Array("é".utf8) + [0x62]
        let right = try TextInputs.boundedText(straddling, limit: limit, truncate: true, name: "t", model: "m")
        XCTAssertEqual(right, [UInt8](repeating: 0x61, count: ceiling - 1))
        let leftInput = [0x62] + Array("é".utf8) + [UInt8](repeating: 0x61, count: ceiling - 1)
        let left = try TextInputs.boundedText(leftInput, limit: limit, truncate: true, side: .left, name: "t", model: "m")
        XCTAssertEqual(left, [UInt8](repeating: 0x61, count: ceiling - 1), "the cut lands inside é: its continuation byte is skipped")
        XCTAssertNotNil(String(validating: left, as: UTF8.self))
    }

    func testPaddedCountsTokens() {
        let (tensor, tokens) = TextInputs.padded([[1, 2, 3], [4]], width: 3)
        XCTAssertEqual(tensor.storage, .int32([1, 2, 3, 4, -1, -1]))
        XCTAssertEqual(tokens, 4)
        XCTAssertEqual(TextInputs.padded([], width: 5).tensor.shape, [0, 5])
    }
}
