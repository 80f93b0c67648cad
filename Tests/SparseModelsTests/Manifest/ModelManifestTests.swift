import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
import SparseModels

final class ModelManifestTests: XCTestCase {
    let valid = """
    {"architecture": "mlp", "name": "m", "description": "d",
     "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
     "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}, {"name": "label", "datatype": "INT64", "shape": [-1]}],
     "layers": [{"name": "fc1", "type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"},
                {"name": "fc2", "type": "linear"},
                {"type": "activation", "activation": "identity"},
                {"type": "softmax"}],
     "labels": ["a", "b", "c"]}
    """

    func testDecodesLayers() throws {
        let manifest = try ModelManifest.decode(Data(valid.utf8), source: "model.json")
        XCTAssertEqual(manifest.architecture, .mlp)
        XCTAssertEqual(manifest.inputs, [TensorSpec(name: "input", datatype: .fp32, shape: [-1, 4])])
        XCTAssertEqual(manifest.outputs.map(\.name), ["probabilities", "label"])
        XCTAssertEqual(manifest.layers, [
            .linear(LinearLayerSpec(name: "fc1", weight: "fc1.weight", bias: "fc1.bias", activation: .relu)),
            .linear(LinearLayerSpec(name: "fc2", weight: "fc2.weight")),
            .activation(ActivationLayerSpec(activation: .none)),
            .softmax(SoftmaxLayerSpec()),
        ])
        XCTAssertEqual(manifest.labels, ["a", "b", "c"])
        // Encoding round-trips.
        let again = try ModelManifest.decode(JSONEncoder().encode(manifest), source: "again")
        XCTAssertEqual(again, manifest)
    }

    func testErrorsNameTheKeyAndTheFile() {
        func variant(_ from: String, _ to: String) -> Data { Data(valid.replacingOccurrences(of: from, with: to).utf8) }
        let cases: [(String, Data, [String])] = [
            ("top-level key", variant(#""labels""#, #""lables""#), ["'lables'", "unknown key"]),
            ("layer key", variant(#""activation": "relu""#, #""activaton": "relu""#), ["layers[0].activaton", "unknown key 'activaton'"]),
            ("tensor spec key", variant(#""datatype": "INT64""#, #""dtype": "INT64""#), ["outputs[1]", "'dtype'"]),
            ("layer type", variant(#""type": "softmax""#, #""type": "conv7d""#), ["layers[3]", "conv7d", "linear"]),
            ("activation", variant(#""relu""#, #""swish""#), ["layers[0]", "swish"]),
            ("datatype", variant(#""FP32", "shape": [-1, 4]"#, #""FP8", "shape": [-1, 4]"#), ["inputs[0]", "FP8"]),
            ("missing architecture", variant(#""architecture": "mlp","#, ""), ["architecture"]),
            ("bad JSON", Data("{\"architecture\": ".utf8), ["invalid manifest"]),
            ("bad shape", variant("[-1, 4]", "[-1, 0]"), ["inputs[0].shape"]),
            ("duplicate output", variant(#""name": "label""#, #""name": "probabilities""#), ["outputs[1]", "twice"]),
            ("linear without weight", variant(#"{"name": "fc2", "type": "linear"}"#, #"{"type": "linear"}"#), ["weight"]),
        ]
        for (label, data, fragments) in cases {
            do {
                _ = try ModelManifest.decode(data, source: "dir/model.json")
                XCTFail("\(label): accepted")
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("dir/model.json: "), "\(label): \(message)")
                for fragment in fragments {
                    XCTAssertTrue(message.contains(fragment), "\(label): '\(fragment)' not in: \(message)")
                }
            }
        }
    }

    func testCommittedManifestsDecode() throws {
        let root = repositoryRoot()
        let digits = try ModelManifest.load(path: root.appendingPathComponent("models/digits-mlp/model.json").path)
        XCTAssertEqual(digits.layers.count, 4)
        let identity = try ModelManifest.load(path: root.appendingPathComponent("Tests/fixtures/models/identity/model.json").path)
        XCTAssertEqual(identity.architecture, .identity)
        XCTAssertTrue(identity.layers.isEmpty)
    }
}
