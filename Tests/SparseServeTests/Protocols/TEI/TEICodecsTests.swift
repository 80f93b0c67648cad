import SparseJSON
import SparseModels
import XCTest
@testable import SparseServe

/// The TEI codecs' model-independent steps: padded token ids back to sequences, vectors written as
/// rows, and which models count as normalising. (test_tei_api.py runs them against MiniLM.)
final class TEICodecsTests: XCTestCase {
    func testPaddedIDsBackToSequences() throws {
        let ids = Tensor(shape: [3, 4], storage: .int32([101, 7, 102, -1, 101, 102, -1, -1, 101, 5, 6, 102]))
        let (sequences, width) = try TEICodecs.unpadded([tokenIDsInputName: ids])
        XCTAssertEqual(sequences, [[101, 7, 102], [101, 102], [101, 5, 6, 102]])
        XCTAssertEqual(width, 4)
        let (padded, tokens) = TextInputs.padded(sequences, width: width)
        XCTAssertEqual(padded, ids, "unpadded is the inverse of padded")
        XCTAssertEqual(tokens, 9)
        for bad in [Tensor(shape: [2], storage: .int32([1, 2])), Tensor(shape: [1, 2], storage: .int64([1, 2])),
                    Tensor(shape: [1, 0], storage: .int32([]))] {
            XCTAssertThrowsError(try TEICodecs.unpadded([tokenIDsInputName: bad])) {
                XCTAssertEqual("\($0)", "input 'input_ids' must be INT32 [n, length]")
            }
        }
        XCTAssertThrowsError(try TEICodecs.unpadded(["other": ids]))
    }

    func testRowsAreWrittenAsNestedArrays() throws {
        func text(_ values: [Float], _ count: Int) -> String {
            var w = JSONWriter()
            TEICodecs.writeRows(values, count: count, into: &w)
            return String(decoding: w.bytes, as: UTF8.self)
        }
        XCTAssertEqual(text([1, 2, 3, 4, 5, 6], 2), "[[1.0,2.0,3.0],[4.0,5.0,6.0]]")
        XCTAssertEqual(text([0.5], 1), "[[0.5]]")
        XCTAssertEqual(text([], 0), "[]")
        let rows = try JSON.parse(text([1, -2, 3, -4], 4)).arrayValue ?? []
        XCTAssertEqual(rows.map { $0.arrayValue?.compactMap(\.doubleValue) ?? [] }, [[1], [-2], [3], [-4]])
    }

    func testOnlyTokenStatesModelsCanNormalise() throws {
        let identity = try IdentityModel(inputs: [TensorSpec(name: "x", datatype: .fp32, shape: [-1, 2])],
                                         outputs: [TensorSpec(name: "y", datatype: .fp32, shape: [-1, 2])])
        XCTAssertFalse(TEICodecs.normalizes(identity))
        XCTAssertThrowsError(try TEICodecs.encoder(identity, name: "identity"), "not a text encoder")
    }
}
