import SparseModels
import XCTest
@testable import SparseServe
import SparseJSON

/// v2 inference requests (JSON, binary extension, raw binary) decoded and checked against the
/// model's declared inputs and outputs.
final class V2RequestDecoderTests: XCTestCase {
    let inputs = [TensorSpec(name: "x", datatype: .fp32, shape: [-1, 3])]
    let outputs = [TensorSpec(name: "y", datatype: .fp32, shape: [-1, 2]), TensorSpec(name: "z", datatype: .int64, shape: [-1])]

    func decode(_ text: String) throws -> InferenceRequest {
        try V2Codec.decodeRequest(Array(text.utf8), inputs: inputs, outputs: outputs)
    }

    func assertRejected(_ text: String, status: Int = 400, _ fragment: String, line: UInt = #line) {
        do {
            _ = try decode(text)
            XCTFail("accepted \(text)", line: line)
        } catch let e as ProtocolError {
            XCTAssertEqual(e.status, status, line: line)
            XCTAssertTrue(e.message.contains(fragment), e.message, line: line)
        } catch { XCTFail("\(error)", line: line) }
    }

    func testDecodesFlatAndNestedData() throws {
        let flat = try decode(#"{"id": "7", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}"#)
        let nested = try decode(#"{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]}]}"#)
        XCTAssertEqual(flat.id, "7")
        XCTAssertEqual(flat.inputs["x"], Tensor(shape: [2, 3], storage: .fp32([1, 2, 3, 4, 5, 6])))
        XCTAssertEqual(flat.inputs, nested.inputs)
        XCTAssertNil(flat.requestedOutputs)
    }

    func testOutputSelection() throws {
        let r = try decode(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "outputs": [{"name": "z"}]}"#)
        XCTAssertEqual(r.requestedOutputs, ["z"])
    }

    func testRejections() {
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, "dimension 1")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}"#, "needs 3 elements but 'data' has 2")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]}]}"#, "does not match")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}"#, "dimensions")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, NaN, 3]}]}"#, "element 1 is NaN")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1e39, 3]}]}"#, "FP32 range")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, true, 3]}]}"#, "must be a number")
        assertRejected(#"{"inputs": [{"name": "q", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#, "unexpected input 'q'")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}, {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#, "more than once")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "outputs": [{"name": "w"}]}"#, "unknown output 'w'")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": 5}]}"#, "'data' must be an array")
        assertRejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]}"#, "exceeds the 0 binary bytes")
        assertRejected(#"{"inputs": {}}"#, "'inputs' must be an array")
        assertRejected(#"{"id": 5, "inputs": []}"#, "'id' must be a string")
        assertRejected("", "empty")
    }

    /// An input with an alternative shape: requests in it are reshaped to the declared shape;
    /// anything else is rejected naming both.
    func testAlternativeInputShapes() throws {
        let spec = [TensorSpec(name: "x", datatype: .fp32, shape: [-1, 1, 3], alternativeShapes: [[-1, 3]])]
        let two = try V2Codec.decodeRequest(Array(#"{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}"#.utf8),
                                                   inputs: spec, outputs: outputs)
        let three = try V2Codec.decodeRequest(Array(#"{"inputs": [{"name": "x", "shape": [2, 1, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}"#.utf8),
                                                     inputs: spec, outputs: outputs)
        XCTAssertEqual(two.inputs["x"], Tensor(shape: [2, 1, 3], storage: .fp32([1, 2, 3, 4, 5, 6])))
        XCTAssertEqual(two.inputs, three.inputs)
        for (shape, fragment) in [("[2, 2, 3]", "[-1, 1, 3] or [-1, 3] at dimension 1"), ("[2, 4]", "the model expects 3 ([-1, 1, 3]) or [-1, 3]"),
                                  ("[0, 3]", "batch dimension must be at least 1")] {
            XCTAssertThrowsError(try V2Codec.decodeRequest(Array(#"{"inputs": [{"name": "x", "shape": \#(shape), "datatype": "FP32", "data": []}]}"#.utf8),
                                                                  inputs: spec, outputs: outputs)) { e in
                XCTAssertTrue("\((e as? ProtocolError)?.message ?? "")".contains(fragment), "\(e)")
            }
        }
    }

    func binaryBody(_ json: String, _ blob: [UInt8]) -> ([UInt8], Int) {
        let header = Array(json.utf8)
        return (header + blob, header.count)
    }

    func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    func testBinaryInputsAndOutputs() throws {
        let (body, n) = binaryBody(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}], "outputs": [{"name": "y", "parameters": {"binary_data": true}}, {"name": "z"}]}"#, floatBytes([1, 2.5, -3]))
        let r = try V2Codec.decodeRequest(body, headerLength: n, inputs: inputs, outputs: outputs)
        XCTAssertEqual(r.inputs["x"], Tensor(shape: [1, 3], storage: .fp32([1, 2.5, -3])))
        XCTAssertTrue(r.wantsBinary("y"))
        XCTAssertFalse(r.wantsBinary("z"))
        let encoded = V2Codec.encodeResponse(modelName: "m", modelVersion: "1", id: nil, outputs: [
            ("y", Tensor(shape: [1, 2], storage: .fp32([0.5, 4]))), ("z", Tensor(shape: [1], storage: .int64([9]))),
        ], binary: r.wantsBinary)
        let jsonLength = try XCTUnwrap(encoded.jsonLength)
        let header = try JSON.parse(Array(encoded.body[0..<jsonLength]))
        XCTAssertEqual(header["outputs"]?.arrayValue?[0]["parameters"]?["binary_data_size"]?.integerValue, 8)
        XCTAssertNil(header["outputs"]?.arrayValue?[0]["data"])
        XCTAssertEqual(Array(encoded.body[jsonLength...]), floatBytes([0.5, 4]))
    }

    func testBinaryDataOutputParameterAppliesToAllOutputs() throws {
        let r = try decode(#"{"parameters": {"binary_data_output": true}, "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#)
        XCTAssertTrue(r.wantsBinary("y") && r.wantsBinary("z"))
    }

    func testBinaryRejections() {
        func rejected(_ json: String, _ blob: [UInt8], _ fragment: String, line: UInt = #line) {
            let (body, n) = binaryBody(json, blob)
            XCTAssertThrowsError(try V2Codec.decodeRequest(body, headerLength: n, inputs: inputs, outputs: outputs), line: line) { e in
                XCTAssertTrue((e as? ProtocolError)?.message.contains(fragment) ?? false, "\(e)", line: line)
            }
        }
        let x = #"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]}"#
        rejected(x, floatBytes([1, 2]), "exceeds")
        rejected(x, floatBytes([1, 2, 3, 4]), "not claimed")
        rejected(x, floatBytes([1, .nan, 3]), "element 1 is NaN")
        rejected(#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}"#, floatBytes([1, 2]), "need 12")
        XCTAssertThrowsError(try V2Codec.decodeRequest([1, 2], headerLength: 5, inputs: inputs, outputs: outputs))
    }

    func testRawBinaryRequest() throws {
        let r = try V2Codec.decodeRequest(floatBytes([1, 2, 3]), headerLength: 0, inputs: inputs, outputs: outputs)
        XCTAssertEqual(r.inputs["x"], Tensor(shape: [1, 3], storage: .fp32([1, 2, 3])))
        XCTAssertTrue(r.allOutputsBinary)
        XCTAssertThrowsError(try V2Codec.decodeRequest(floatBytes([1, 2, 3, 4, 5, 6]), headerLength: 0, inputs: inputs, outputs: outputs), "batch is 1")
        let seq = [TensorSpec(name: "t", datatype: .int32, shape: [-1, -1])]
        let r2 = try V2Codec.decodeRequest([1, 0, 0, 0, 2, 0, 0, 0], headerLength: 0, inputs: seq, outputs: [])
        XCTAssertEqual(r2.inputs["t"], Tensor(shape: [1, 2], storage: .int32([1, 2])))
        XCTAssertThrowsError(try V2Codec.decodeRequest(floatBytes([1, 2]), headerLength: 0, inputs: inputs, outputs: outputs))
        let bytesSpec = [TensorSpec(name: "s", datatype: .bytes, shape: [-1])]
        XCTAssertThrowsError(try V2Codec.decodeRequest([0, 0, 0, 0], headerLength: 0, inputs: bytesSpec, outputs: []))
    }

    func testBinaryBytesElements() throws {
        let spec = [TensorSpec(name: "s", datatype: .bytes, shape: [-1])]
        let blob: [UInt8] = [2, 0, 0, 0, 0x68, 0x69, 0, 0, 0, 0]
        let (body, n) = binaryBody(#"{"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 10}}]}"#, blob)
        let r = try V2Codec.decodeRequest(body, headerLength: n, inputs: spec, outputs: [])
        XCTAssertEqual(r.inputs["s"]?.storage, .bytes([[0x68, 0x69], []]))
        var out: [UInt8] = []
        V2Codec.appendBinary(.bytes([[0x68, 0x69], []]), to: &out)
        XCTAssertEqual(out, blob)
        let (bad, m) = binaryBody(#"{"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}"#, [9, 0, 0, 0, 1, 2])
        XCTAssertThrowsError(try V2Codec.decodeRequest(bad, headerLength: m, inputs: spec, outputs: []))
    }

    func testIntegerRangesPerDatatype() throws {
        func decodeOne(_ dtype: DataType, _ data: String) throws -> TensorStorage {
            let spec = [TensorSpec(name: "v", datatype: dtype, shape: [-1])]
            let body = #"{"inputs": [{"name": "v", "shape": [2], "datatype": "\#(dtype.rawValue)", "data": \#(data)}]}"#
            return try V2Codec.decodeRequest(Array(body.utf8), inputs: spec, outputs: []).inputs["v"]!.storage
        }
        XCTAssertEqual(try decodeOne(.uint8, "[0, 255]"), .uint8([0, 255]))
        XCTAssertThrowsError(try decodeOne(.uint8, "[0, 256]"))
        XCTAssertThrowsError(try decodeOne(.int32, "[0, 2147483648]"))
        XCTAssertThrowsError(try decodeOne(.int64, "[0, 1.5]"))
        XCTAssertEqual(try decodeOne(.bool, "[true, false]"), .bool([true, false]))
        XCTAssertThrowsError(try decodeOne(.bool, "[1, 0]"))
        XCTAssertEqual(try decodeOne(.bytes, #"["a", "é"]"#), .bytes([[0x61], [0xC3, 0xA9]]))
        XCTAssertEqual(try decodeOne(.fp64, "[1e300, -2]"), .fp64([1e300, -2]))
    }
}
