import SparseModels
import XCTest
@testable import SparseServe

/// Which outputs a decoded request wants in binary: those named, or all for a raw binary request.
final class InferenceRequestTests: XCTestCase {
    func testBinaryOutputSelection() throws {
        var request = InferenceRequest(id: nil, inputs: [:])
        XCTAssertFalse(request.wantsBinary("y"), "JSON by default")
        request.binaryOutputs = ["y"]
        XCTAssertTrue(request.wantsBinary("y"))
        XCTAssertFalse(request.wantsBinary("z"))
        request.binaryOutputs = []
        XCTAssertFalse(request.wantsBinary("y"))
        request.allOutputsBinary = true
        XCTAssertTrue(request.wantsBinary("z"), "a raw binary request gets every output in binary")
    }

    /// The decoder sets the selection from `parameters.binary_data` per output and the request-wide default.
    func testDecoderSetsTheSelection() throws {
        let inputs = [TensorSpec(name: "x", datatype: .fp32, shape: [-1, 1])]
        let outputs = [TensorSpec(name: "y", datatype: .fp32, shape: [-1, 1]), TensorSpec(name: "z", datatype: .fp32, shape: [-1, 1])]
        let body = #"{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "z", "parameters": {"binary_data": true}}, {"name": "y"}]}"#
        let request = try V2Codec.decodeRequest(Array(body.utf8), inputs: inputs, outputs: outputs)
        XCTAssertEqual(request.requestedOutputs, ["z", "y"])
        XCTAssertTrue(request.wantsBinary("z"))
        XCTAssertFalse(request.wantsBinary("y"))
        XCTAssertFalse(request.truncate)
        XCTAssertNil(request.timeoutMicroseconds)
    }
}
