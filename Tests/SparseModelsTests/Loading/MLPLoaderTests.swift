import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// MLPLoader: an mlp folder's layer list becomes the forward pass (linear layers with their
/// activations, element-wise steps, softmax); what does not fit is refused naming the manifest or
/// the tensor.
final class MLPLoaderTests: XCTestCase {
    // 3 inputs → 2 (ReLU) → 2 → softmax, small enough to compute by hand.
    let w1: [Float] = [1, -1, 0.5, -2, 0.25, 1], b1: [Float] = [0.1, -0.2]
    let w2: [Float] = [1, 2, -1, 0.5], b2: [Float] = [0, 0.3]

    func manifest(inputs: String = #"[{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]"#,
                  outputs: String = #"[{"name": "p", "datatype": "FP32", "shape": [-1, 2]}, {"name": "k", "datatype": "INT64", "shape": [-1]}]"#,
                  layers: String? = nil, extra: String = "") -> String {
        let defaultLayers = #"[{"name": "fc1", "type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"},"#
            + #"{"name": "fc2", "type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"}, {"type": "softmax"}]"#
        return #"{"architecture": "mlp", "name": "tiny", "inputs": \#(inputs), "outputs": \#(outputs), "layers": \#(layers ?? defaultLayers)\#(extra)}"#
    }

    func folder(_ manifest: String, fc2Shape: [Int] = [2, 2]) throws -> ModelFolder {
        let fc2 = fc2Shape == [2, 2] ? w2 : [Float](repeating: 0.5, count: fc2Shape.reduce(1, *))
        return try ModelFolder(self, manifest: manifest, tensors: [("fc1.weight", w1, [2, 3]), ("fc1.bias", b1, [2]),
                                                                   ("fc2.weight", fc2, fc2Shape), ("fc2.bias", b2, [2])])
    }

    /// softmax(W2·relu(W1·x + b1) + b2), row by row.
    func reference(_ x: [Float]) -> [Float] {
        let h = (0..<2).map { r in max(0, (0..<3).map { w1[r * 3 + $0] * x[$0] }.reduce(b1[r], +)) }
        let z = (0..<2).map { r in (0..<2).map { w2[r * 2 + $0] * h[$0] }.reduce(b2[r], +) }
        let e = z.map { exp($0 - z.max()!) }
        return e.map { $0 / e.reduce(0, +) }
    }

    func testTheLayerListBecomesTheForwardPass() throws {
        let source = try ModelSource(directory: try folder(manifest()).path, plan: .dense, compressor: nil, timeLayers: false)
        let model = try MLPLoader.open(source).model
        let rows: [[Float]] = [[1, 2, 3], [-1, 0.5, 4]]
        let out = try model.infer(["x": Tensor(shape: [2, 3], storage: .fp32(rows.flatMap { $0 }))])
        let p = try fp32Output(out, "p")
        assertClose(p, rows.flatMap(reference), tolerance: 1e-6, "probabilities")
        guard case .int64(let labels)? = out["k"]?.storage else { return XCTFail("k is not INT64") }
        XCTAssertEqual(labels, (0..<2).map { Int64(p[$0 * 2] >= p[$0 * 2 + 1] ? 0 : 1) })
        XCTAssertEqual(model.summary.layers.map(\.name), ["fc1", "fc2", "layers[2]"])
        XCTAssertEqual(model.summary.layers.map(\.parameterCount), [8, 6, 0])
        XCTAssertEqual(model.summary.layers[0].activation, "relu")
    }

    /// An activation layer after a bias-free linear layer applies to that layer's output.
    func testActivationLayerAfterALinearLayerWithoutBias() throws {
        let layers = #"[{"name": "fc1", "type": "linear", "weight": "fc1.weight"}, {"type": "activation", "activation": "relu"},"#
            + #"{"name": "fc2", "type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"}]"#
        let outputs = #"[{"name": "z", "datatype": "FP32", "shape": [-1, 2]}]"#
        let model = try ModelLoader.load(directory: try folder(manifest(outputs: outputs, layers: layers)).path)
        let x: [Float] = [1, 2, 3]
        let h = (0..<2).map { r in max(0, (0..<3).map { w1[r * 3 + $0] * x[$0] }.reduce(0, +)) }
        let z = (0..<2).map { r in (0..<2).map { w2[r * 2 + $0] * h[$0] }.reduce(b2[r], +) }
        assertClose(try fp32Output(try model.infer(["x": Tensor(shape: [1, 3], storage: .fp32(x))]), "z"), z, tolerance: 1e-6)
    }

    func testWhatDoesNotFitIsRefusedNamingIt() throws {
        let cases: [(String, [String])] = [
            (manifest(inputs: #"[{"name": "a", "datatype": "FP32", "shape": [-1, 3]}, {"name": "b", "datatype": "FP32", "shape": [-1, 3]}]"#),
             ["exactly one input", "declares 2"]),
            (manifest(inputs: #"[{"name": "x", "datatype": "INT64", "shape": [-1, 3]}]"#), ["input 'x' must be FP32 with shape [-1, features]"]),
            (manifest(layers: "[]"), ["non-empty 'layers'"]),
            (manifest(layers: #"[{"type": "softmax"}]"#), ["at least one linear layer"]),
            (manifest(layers: #"[{"name": "c", "type": "conv1d", "weight": "fc1.weight"}]"#), ["layer 'c'", "'sequential' architecture"]),
            (manifest(outputs: #"[{"name": "p", "datatype": "FP32", "shape": [-1, 3]}]"#), ["outputs[0] 'p'", "FP32 [-1, 2]"]),
            (manifest(extra: #", "labels": ["a", "b", "c"]"#), ["'labels' has 3 names", "produces 2 features"]),
        ]
        for (text, fragments) in cases {
            let model = try folder(text)
            assertError(try ModelLoader.load(directory: model.path), contains: fragments + [ModelLoader.manifestFileName])
        }
        // A weight whose inputs do not match the previous layer's outputs is named with its file.
        let mismatched = try folder(manifest(), fc2Shape: [2, 5])
        assertError(try ModelLoader.load(directory: mismatched.path),
                    contains: ["fc2.weight", "5 inputs", "previous layer produces 2 features", ModelLoader.weightsFileName])
    }
}
