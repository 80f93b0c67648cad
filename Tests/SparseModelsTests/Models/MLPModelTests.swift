import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
import SparseModels

final class MLPModelTests: XCTestCase {
    var digitsDirectory: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    /// The served model reproduces the training script's float64 reference on the whole test split.
    func testDigitsMatchesPythonReference() throws {
        let model = try ModelLoader.load(directory: digitsDirectory)
        XCTAssertEqual(model.architecture, "mlp")
        XCTAssertEqual(model.inputs, [TensorSpec(name: "input", datatype: .fp32, shape: [-1, 64])])
        XCTAssertEqual(Set(model.outputs.map(\.name)), ["probabilities", "label"])

        let split = try SafeTensors(contentsOf: repositoryRoot().appendingPathComponent("models/digits-mlp/test.safetensors").path)
        let inputs = try split.tensor(named: "inputs")
        let labels = try split.int64Tensor(named: "labels")
        let reference = try split.tensor(named: "probabilities")
        let n = labels.count
        XCTAssertEqual(try split.info(named: "inputs").shape, [n, 64])

        for isa in InstructionSet.available {
            let mlp = try XCTUnwrap(model as? MLPModel)
            let probabilities = mlp.forward(Matrix(rows: n, columns: 64, values: inputs), isa: isa)
            let maxError = zip(probabilities.values, reference).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(maxError, 1e-5, "\(isa)")
            print("digits-mlp on \(isa): max |p - p_ref| = \(maxError) over \(n) samples")
        }

        for batch in [1, 37, n] {
            var correct = 0, referenceCorrect = 0
            for start in stride(from: 0, to: n, by: batch) {
                let rows = min(batch, n - start)
                let x = Tensor(shape: [rows, 64], storage: .fp32(Array(inputs[start * 64 ..< (start + rows) * 64])))
                let out = try model.infer(["input": x])
                guard case .fp32(let p)? = out["probabilities"]?.storage, case .int64(let predicted)? = out["label"]?.storage else {
                    return XCTFail("missing or mistyped outputs")
                }
                XCTAssertEqual(out["probabilities"]?.shape, [rows, 10])
                XCTAssertEqual(out["label"]?.shape, [rows])
                for r in 0..<rows {
                    let i = start + r
                    let expected = reference[i * 10 ..< (i + 1) * 10]
                    let referenceArgmax = Int64(expected.indices.max { expected[$0] < expected[$1] }! - i * 10)
                    XCTAssertEqual(predicted[r], referenceArgmax, "sample \(i)")
                    XCTAssertLessThanOrEqual(zip(p[r * 10 ..< (r + 1) * 10], expected).map { abs($0 - $1) }.max()!, 1e-5)
                    if predicted[r] == labels[i] { correct += 1 }
                    if referenceArgmax == labels[i] { referenceCorrect += 1 }
                }
            }
            XCTAssertEqual(correct, referenceCorrect)
            let accuracy = Double(correct) / Double(n)
            XCTAssertEqual(String(format: "%.6f", accuracy), split.metadata["test_accuracy"])
            XCTAssertGreaterThan(accuracy, 0.9)
        }
    }

    func testSummary() throws {
        let model = try ModelLoader.load(directory: digitsDirectory)
        let summary = try XCTUnwrap(ModelLoader.summary(of: model))
        XCTAssertEqual(summary.layers.map(\.name), ["fc1", "fc2", "fc3", "softmax"])
        XCTAssertEqual(summary.layers.map(\.outputFeatures), [256, 256, 10, 10])
        XCTAssertEqual(summary.parameterCount, 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10)
        XCTAssertEqual(summary.layers[2].byteCount, (16 * 256 + 10) * 4)  // 10 outputs padded to a 16-wide panel
    }

    func testRejectsBadInputs() throws {
        let model = try ModelLoader.load(directory: digitsDirectory)
        assertError(try model.infer([:]), contains: ["input"])
        assertError(try model.infer(["input": Tensor(shape: [1, 63], storage: .fp32(.init(repeating: 0, count: 63)))]), contains: ["[batch, 64]"])
        assertError(try model.infer(["input": Tensor(shape: [1, 64], storage: .fp64(.init(repeating: 0, count: 64)))]), contains: ["FP32"])
        let empty = try model.infer(["input": Tensor(shape: [0, 64], storage: .fp32([]))])
        XCTAssertEqual(empty["label"]?.shape, [0])
    }

    func testIdentityFixtureLoads() throws {
        let model = try ModelLoader.load(directory: repositoryRoot().appendingPathComponent("Tests/fixtures/models/identity").path)
        XCTAssertEqual(model.architecture, "identity")
        XCTAssertEqual(model.inputs.count, 7)
    }

    // MARK: - Load errors

    /// Writes a model directory with the given manifest and tensors.
    func makeModel(manifest: String, tensors: [(String, [Int])]) throws -> String {
        let dir = try makeTemporaryDirectory()
        try Data(manifest.utf8).write(to: dir.appendingPathComponent("model.json"))
        var writer = SafeTensorsWriter()
        for (name, shape) in tensors {
            try writer.add(name, floats: [Float](repeating: 0.5, count: shape.reduce(1, *)), shape: shape)
        }
        try writer.write(to: dir.appendingPathComponent("model.safetensors").path)
        return dir.path
    }

    func manifest(outputs: String = #"{"name": "y", "datatype": "FP32", "shape": [-1, 3]}"#, layers: String) -> String {
        """
        {"architecture": "mlp", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
         "outputs": [\(outputs)], "layers": [\(layers)]}
        """
    }

    func testLoadErrorsNameFileAndProblem() throws {
        let twoLayers = #"{"name": "a", "type": "linear", "weight": "a.w", "bias": "a.b", "activation": "gelu"}, {"name": "b", "type": "linear", "weight": "b.w"}"#
        // A good one first, so the failures below are about what they change.
        let good = try makeModel(manifest: manifest(layers: twoLayers), tensors: [("a.w", [5, 4]), ("a.b", [5]), ("b.w", [3, 5])])
        let model = try ModelLoader.load(directory: good)
        let out = try model.infer(["x": Tensor(shape: [2, 4], storage: .fp32(.init(repeating: 1, count: 8)))])
        XCTAssertEqual(out["y"]?.shape, [2, 3])

        let cases: [(String, String, [(String, [Int])], [String])] = [
            ("chain", manifest(layers: twoLayers), [("a.w", [5, 4]), ("a.b", [5]), ("b.w", [3, 6])],
             ["model.safetensors", "'b.w'", "6 inputs", "produces 5"]),
            ("first layer width", manifest(layers: twoLayers), [("a.w", [5, 3]), ("a.b", [5]), ("b.w", [3, 5])],
             ["model.safetensors", "'a.w'", "3 inputs"]),
            ("bias shape", manifest(layers: twoLayers), [("a.w", [5, 4]), ("a.b", [4]), ("b.w", [3, 5])],
             ["model.safetensors", "'a.b'", "expected [5]"]),
            ("missing tensor", manifest(layers: twoLayers), [("a.w", [5, 4]), ("a.b", [5])],
             ["model.safetensors", "'b.w'", "no such tensor"]),
            ("1-D weight", manifest(layers: twoLayers), [("a.w", [20]), ("a.b", [5]), ("b.w", [3, 5])],
             ["'a.w'", "2-D"]),
            ("output width", manifest(layers: twoLayers.replacingOccurrences(of: "[3, 5]", with: "")), [("a.w", [5, 4]), ("a.b", [5]), ("b.w", [4, 5])],
             ["model.json", "outputs[0] 'y'", "[-1, 4]"]),
            ("no layers", manifest(layers: ""), [], ["model.json", "layers"]),
            ("argmax output type", manifest(outputs: #"{"name": "y", "datatype": "INT32", "shape": [-1]}"#, layers: twoLayers),
             [("a.w", [5, 4]), ("a.b", [5]), ("b.w", [3, 5])], ["model.json", "INT64"]),
        ]
        for (label, text, tensors, fragments) in cases {
            let dir = try makeModel(manifest: text, tensors: tensors)
            do {
                _ = try ModelLoader.load(directory: dir)
                XCTFail("\(label): loaded")
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.contains(dir), "\(label): no path in \(message)")
                for fragment in fragments {
                    XCTAssertTrue(message.contains(fragment), "\(label): '\(fragment)' not in: \(message)")
                }
            }
        }
    }

    func testMissingFiles() throws {
        assertError(try ModelLoader.load(directory: "/nonexistent/model"), contains: ["/nonexistent/model", "does not exist"])
        let dir = try makeTemporaryDirectory()
        assertError(try ModelLoader.load(directory: dir.path), contains: ["model.json", "does not exist"])
        try Data(#"{"architecture": "mlp", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}], "layers": [{"type": "softmax"}]}"#.utf8)
            .write(to: dir.appendingPathComponent("model.json"))
        assertError(try ModelLoader.load(directory: dir.path), contains: ["model.safetensors", "does not exist"])
        try Data([0x10, 0, 0, 0, 0, 0, 0, 0] + Array("{not json".utf8)).write(to: dir.appendingPathComponent("model.safetensors"))
        assertError(try ModelLoader.load(directory: dir.path), contains: ["model.safetensors", "header length 16"])
        try Data(#"{"architecture": "transformer9000", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]}"#.utf8)
            .write(to: dir.appendingPathComponent("model.json"))
        assertError(try ModelLoader.load(directory: dir.path), contains: ["model.json", "transformer9000", "mlp"])
    }
}
