import SparseModels
import XCTest
@testable import SparseServe
import SparseJSON

/// `data` arrays into typed storage: typed number runs and boxed values give the same tensors, nested
/// arrays are flattened in order, and every refusal names the input and the element's flat index.
final class V2DataDecoderTests: XCTestCase {
    private func decode(_ text: String, _ datatype: DataType, typed: Bool) throws -> TensorStorage {
        let json = try JSON.parse(Array(text.utf8), typedNumberArrays: typed)
        let count = try V2Codec.countLeaves(json, input: "x")
        return try V2Codec.decodeData(json, datatype: datatype, count: count, input: "x")
    }

    private func message(_ text: String, _ datatype: DataType, typed: Bool = true) -> String {
        do {
            _ = try decode(text, datatype, typed: typed)
            return "accepted"
        } catch let error as ProtocolError {
            XCTAssertEqual(error.status, 400)
            return error.message
        } catch {
            return "\(error)"
        }
    }

    func testTypedRunsAndBoxedValuesAgree() throws {
        let cases: [(String, DataType, TensorStorage)] = [
            ("[[1, 2.5], [-3, 4e-3]]", .fp32, .fp32([1, 2.5, -3, 4e-3])),
            ("[1e300, -0.0, 5]", .fp64, .fp64([1e300, -0.0, 5])),
            ("[[0], [255, 17]]", .uint8, .uint8([0, 255, 17])),
            ("[-2147483648, 2147483647]", .int32, .int32([.min, .max])),
            ("[9007199254740993, -9223372036854775808]", .int64, .int64([9007199254740993, .min])),
            ("[[true], [false, true]]", .bool, .bool([true, false, true])),
            (#"[["a"], ["", "é"]]"#, .bytes, .bytes([[0x61], [], [0xC3, 0xA9]])),
            ("[]", .fp32, .fp32([])),
        ]
        for (text, datatype, expected) in cases {
            XCTAssertEqual(try decode(text, datatype, typed: true), expected, "typed \(text)")
            XCTAssertEqual(try decode(text, datatype, typed: false), expected, "boxed \(text)")
        }
    }

    func testLeafCounting() throws {
        XCTAssertEqual(try V2Codec.countLeaves(try JSON.parse(Array("[[1, 2], [3, [4, 5]], 6]".utf8), typedNumberArrays: true), input: "x"), 6)
        XCTAssertEqual(try V2Codec.countLeaves(try JSON.parse(#"[[true, "s"], null]"#), input: "x"), 3)
        XCTAssertThrowsError(try V2Codec.countLeaves(try JSON.parse(#"{"a": 1}"#), input: "img")) { error in
            XCTAssertEqual((error as? ProtocolError)?.message, "input 'img': 'data' must be an array, got an object")
        }
    }

    /// The element index counts across nested arrays and mixed runs, so the client can find it.
    func testRefusalsNameTheFlatElement() {
        for typed in [true, false] {
            XCTAssertEqual(message("[[1, 2], [3, NaN]]", .fp32, typed: typed), "input 'x': element 3 is NaN; only finite numbers are accepted")
            XCTAssertEqual(message("[[1], [2, -Infinity]]", .fp64, typed: typed), "input 'x': element 2 is infinite; only finite numbers are accepted")
            XCTAssertEqual(message("[0, 1e39]", .fp32, typed: typed), "input 'x': element 1 is outside the FP32 range")
            XCTAssertEqual(message("[[1, 2], [256]]", .uint8, typed: typed), "input 'x': element 2 value 256 is out of range for UINT8")
            XCTAssertEqual(message("[1, -1]", .uint8, typed: typed), "input 'x': element 1 value -1 is out of range for UINT8")
            XCTAssertEqual(message("[1, 2.5]", .int32, typed: typed), "input 'x': element 1 is not an integer (INT32)")
            XCTAssertEqual(message("[true, 1]", .bool, typed: typed), "input 'x': element 1 must be true or false, got a number")
        }
        XCTAssertEqual(message(#"[1, "2"]"#, .fp32), "input 'x': element 1 must be a number, got a string")
        XCTAssertEqual(message("[[1, 2], [null]]", .int64), "input 'x': element 2 must be a number, got null")
        XCTAssertEqual(message(#"["a", 5]"#, .bytes), "input 'x': element 1 must be a string, got a number")
        XCTAssertEqual(message(#"[true, "no"]"#, .bool), "input 'x': element 1 must be true or false, got a string")
    }
}
