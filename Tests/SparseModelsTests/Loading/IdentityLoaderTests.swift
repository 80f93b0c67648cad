import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// IdentityLoader: the manifest alone makes the model (no weights); output i mirrors input i.
final class IdentityLoaderTests: XCTestCase {
    func testTheFixtureEchoesEveryInputUnderItsOutputName() throws {
        let directory = repositoryRoot().appendingPathComponent("Tests/fixtures/models/identity").path
        let model = try ModelLoader.load(directory: directory)
        XCTAssertTrue(model is IdentityModel)
        XCTAssertEqual(model.inputs.count, 7)
        let floats = Tensor(shape: [1, 2], storage: .fp32([1.5, -2]))
        let ints = Tensor(shape: [2, 1], storage: .int64([7, -9]))
        var inputs: [String: Tensor] = [:]
        for spec in model.inputs { inputs[spec.name] = spec.datatype == .int64 ? ints : floats }
        let out = try model.infer(inputs)
        XCTAssertEqual(out["FP32_OUT"], floats)
        XCTAssertEqual(out["INT64_OUT"], ints)
        XCTAssertEqual(Set(out.keys), Set(model.outputs.map(\.name)))
    }

    func testOutputsThatCannotMirrorTheInputsAreRefusedNamingTheManifest() throws {
        let cases: [(String, String)] = [
            (#"[{"name": "a", "datatype": "FP32", "shape": [-1]}]"#, "as many outputs as inputs (got 2 and 1)"),
            (#"[{"name": "a", "datatype": "INT32", "shape": [-1]}, {"name": "b", "datatype": "FP32", "shape": [-1]}]"#,
             "identity output 'a' must have the datatype and rank of input 'x'"),
            (#"[{"name": "a", "datatype": "FP32", "shape": [-1, 4]}, {"name": "b", "datatype": "FP32", "shape": [-1]}]"#,
             "identity output 'a' must have the datatype and rank of input 'x'"),
        ]
        for (outputs, fragment) in cases {
            let folder = try ModelFolder(self, manifest: #"{"architecture": "identity", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]},"#
                                         + #"{"name": "y", "datatype": "FP32", "shape": [-1]}], "outputs": \#(outputs)}"#)
            assertError(try ModelLoader.load(directory: folder.path), contains: [fragment, ModelLoader.manifestFileName])
        }
    }

    func testAMissingInputIsAnInputError() throws {
        let folder = try ModelFolder(self, manifest: #"{"architecture": "identity", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],"#
                                     + #""outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]}"#)
        let model = try ModelLoader.load(directory: folder.path)
        assertError(try model.infer([:]), contains: ["missing input 'x'"])
    }
}
