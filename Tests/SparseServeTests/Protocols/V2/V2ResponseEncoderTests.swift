import SparseModels
import XCTest
@testable import SparseServe
import SparseJSON

/// v2 responses: JSON outputs per datatype, the binary extension's layout and header length.
final class V2ResponseEncoderTests: XCTestCase {
    func testEncodeResponse() throws {
        let bytes = V2Codec.encodeResponse(modelName: "m", modelVersion: "1", id: "r1", outputs: [
            ("y", Tensor(shape: [1, 2], storage: .fp32([0.5, 0.25]))),
            ("z", Tensor(shape: [1], storage: .int64([3]))),
            ("s", Tensor(shape: [1], storage: .bytes([Array("q\"".utf8)]))),
        ])
        XCTAssertNil(bytes.jsonLength)
        let json = try JSON.parse(bytes.body)
        XCTAssertEqual(json["model_name"]?.stringValue, "m")
        XCTAssertEqual(json["id"]?.stringValue, "r1")
        let outs = json["outputs"]!.arrayValue!
        XCTAssertEqual(outs[0]["shape"], .array([.number(double: 1, integer: 1), .number(double: 2, integer: 2)]))
        XCTAssertEqual(outs[0]["data"]?.arrayValue?.compactMap(\.doubleValue), [0.5, 0.25])
        XCTAssertEqual(outs[1]["datatype"]?.stringValue, "INT64")
        XCTAssertEqual(outs[2]["data"]?.arrayValue?.first?.stringValue, "q\"")
    }

    /// Without an id the key is left out; every datatype is written as JSON values of its kind.
    func testEveryDatatypeAsJSON() throws {
        let encoded = V2Codec.encodeResponse(modelName: "m", modelVersion: "", id: nil, outputs: [
            ("b", Tensor(shape: [2], storage: .bool([true, false]))),
            ("u", Tensor(shape: [2], storage: .uint8([0, 255]))),
            ("i", Tensor(shape: [2], storage: .int32([-2147483648, 7]))),
            ("d", Tensor(shape: [1], storage: .fp64([1e300]))),
            ("e", Tensor(shape: [0], storage: .fp32([]))),
        ])
        let text = String(decoding: encoded.body, as: UTF8.self)
        XCTAssertFalse(text.contains("\"id\""), text)
        XCTAssertTrue(text.contains(#""name":"b","datatype":"BOOL","shape":[2],"data":[true,false]"#), text)
        XCTAssertTrue(text.contains(#""data":[0,255]"#), text)
        XCTAssertTrue(text.contains(#""data":[-2147483648,7]"#), text)
        XCTAssertTrue(text.contains(#""name":"e","datatype":"FP32","shape":[0],"data":[]"#), text)
        XCTAssertEqual(try JSON.parse(encoded.body)["outputs"]?.arrayValue?[3]["data"]?.arrayValue?.first?.doubleValue, 1e300)
    }

    /// Binary outputs carry `binary_data_size` and their little-endian bytes follow the JSON header
    /// in output order; JSON outputs stay inline.
    func testBinaryOutputsFollowTheHeader() throws {
        let encoded = V2Codec.encodeResponse(modelName: "m", modelVersion: "1", id: nil, outputs: [
            ("y", Tensor(shape: [2], storage: .fp32([1, -2]))),
            ("j", Tensor(shape: [1], storage: .int64([5]))),
            ("s", Tensor(shape: [2], storage: .bytes([Array("hi".utf8), []]))),
        ], binary: { $0 != "j" })
        let length = try XCTUnwrap(encoded.jsonLength)
        let header = try JSON.parse(Array(encoded.body[..<length]))
        let outs = try XCTUnwrap(header["outputs"]?.arrayValue)
        XCTAssertEqual(outs[0]["parameters"]?["binary_data_size"]?.integerValue, 8)
        XCTAssertNil(outs[0]["data"])
        XCTAssertEqual(outs[1]["data"]?.arrayValue?.first?.integerValue, 5)
        XCTAssertEqual(outs[2]["parameters"]?["binary_data_size"]?.integerValue, 4 + 2 + 4)
        let blob = Array(encoded.body[length...])
        XCTAssertEqual(blob, [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0,  // 1.0, -2.0
                              0x02, 0x00, 0x00, 0x00, 0x68, 0x69, 0x00, 0x00, 0x00, 0x00])  // "hi", ""
    }

    func testBinaryLayoutPerDatatype() {
        func bytes(_ storage: TensorStorage) -> [UInt8] {
            var out: [UInt8] = []
            V2Codec.appendBinary(storage, to: &out)
            return out
        }
        XCTAssertEqual(bytes(.bool([true, false, true])), [1, 0, 1])
        XCTAssertEqual(bytes(.uint8([7, 255])), [7, 255])
        XCTAssertEqual(bytes(.int32([-1, 2])), [0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0])
        XCTAssertEqual(bytes(.int64([256])), [0, 1, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(bytes(.fp64([1])), [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
        XCTAssertEqual(bytes(.bytes([])), [])
    }
}
