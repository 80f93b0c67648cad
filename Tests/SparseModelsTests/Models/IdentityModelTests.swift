import XCTest
@testable import SparseModels

/// The conformance model: output i is input i, for any datatype; mismatched declarations refused.
final class IdentityModelTests: XCTestCase {
    func testOutputsMirrorInputsByPosition() throws {
        let model = try IdentityModel(inputs: [TensorSpec(name: "a", datatype: .bytes, shape: [-1]), TensorSpec(name: "b", datatype: .int64, shape: [-1, 2])],
                                      outputs: [TensorSpec(name: "x", datatype: .bytes, shape: [-1]), TensorSpec(name: "y", datatype: .int64, shape: [-1, 3])])
        let a = Tensor(shape: [2], storage: .bytes([[0xFF], []])), b = Tensor(shape: [1, 2], storage: .int64([.min, .max]))
        let out = try model.infer(["a": a, "b": b, "ignored": a])
        XCTAssertEqual(out, ["x": a, "y": b])
        XCTAssertEqual(model.architecture, "identity")
        XCTAssertThrowsError(try model.infer(["a": a])) { XCTAssertEqual("\($0)", "missing input 'b'") }
    }

    func testDeclarationsMustPair() {
        let fp32 = TensorSpec(name: "i", datatype: .fp32, shape: [-1, 4])
        XCTAssertThrowsError(try IdentityModel(inputs: [], outputs: [])) { XCTAssertTrue("\($0)".contains("got 0 and 0")) }
        XCTAssertThrowsError(try IdentityModel(inputs: [fp32], outputs: [])) { XCTAssertTrue("\($0)".contains("got 1 and 0")) }
        XCTAssertThrowsError(try IdentityModel(inputs: [fp32], outputs: [TensorSpec(name: "o", datatype: .fp64, shape: [-1, 4])])) {
            XCTAssertEqual("\($0)", "identity output 'o' must have the datatype and rank of input 'i'")
        }
        XCTAssertThrowsError(try IdentityModel(inputs: [fp32], outputs: [TensorSpec(name: "o", datatype: .fp32, shape: [-1])]))
        XCTAssertNoThrow(try IdentityModel(inputs: [fp32], outputs: [TensorSpec(name: "o", datatype: .fp32, shape: [-1, 7])]), "same rank suffices")
    }
}
