import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// SequentialLoader: each layer of a sequential manifest is lowered once to a step on time-major
/// rows; shapes are followed layer to layer and what does not fit is refused naming it.
final class SequentialLoaderTests: XCTestCase {
    // Per-step linear 1 → 2 channels (ReLU) over 4 steps, then global average pooling.
    let w: [Float] = [2, -1], b: [Float] = [0.5, 1]

    func manifest(input: String = "[-1, 1, 4]", layers: String? = nil, outputs: String = #"[{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]"#,
                  extra: String = "") -> String {
        let defaultLayers = #"[{"name": "proj", "type": "linear", "weight": "proj.weight", "bias": "proj.bias", "activation": "relu"},"#
            + #"{"name": "gap", "type": "globalavgpool1d"}]"#
        return #"{"architecture": "sequential", "inputs": [{"name": "x", "datatype": "FP32", "shape": \#(input)}],"#
            + #""outputs": \#(outputs), "layers": \#(layers ?? defaultLayers)\#(extra)}"#
    }

    func folder(_ manifest: String) throws -> ModelFolder {
        try ModelFolder(self, manifest: manifest, tensors: [("proj.weight", w, [2, 1]), ("proj.bias", b, [2])])
    }

    /// mean over steps of relu(w·x_t + b), per channel.
    func reference(_ x: [Float]) -> [Float] {
        (0..<2).map { c in x.map { max(0, w[c] * $0 + b[c]) }.reduce(0, +) / Float(x.count) }
    }

    func testLayersAreLoweredInOrderAndFollowTheShape() throws {
        let model = try ModelLoader.load(directory: try folder(manifest()).path)
        let rows: [[Float]] = [[1, -2, 0.5, 3], [0, 0, -1, 1]]
        let out = try model.infer(["x": Tensor(shape: [2, 1, 4], storage: .fp32(rows.flatMap { $0 }))])
        assertClose(try fp32Output(out, "y"), rows.flatMap(reference), tolerance: 1e-6)
        // One channel: [n, length] is accepted as well.
        let flat = try model.infer(["x": Tensor(shape: [2, 4], storage: .fp32(rows.flatMap { $0 }))])
        assertClose(try fp32Output(flat, "y"), rows.flatMap(reference), tolerance: 1e-6)
        let summary = try XCTUnwrap(ModelLoader.summary(of: model))
        XCTAssertEqual(summary.architecture, "sequential")
        XCTAssertEqual(summary.layers.map(\.name), ["proj", "gap"])
        XCTAssertEqual(summary.layers.map(\.outputFeatures), [8, 2])
    }

    func testWhatDoesNotFitIsRefusedNamingIt() throws {
        let cases: [(String, [String])] = [
            (manifest(input: "[-1, 1, 2, 4]"), ["input 'x' must be FP32 with shape [-1, length] or [-1, channels, length]"]),
            (manifest(layers: "[]"), ["non-empty 'layers'"]),
            (manifest(layers: #"[{"name": "p", "type": "maxpool1d", "kernelSize": 8}]"#), ["layer 'p'", "8 steps is longer than its input of 4 steps"]),
            (manifest(outputs: #"[{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]"#), ["outputs[0] 'y'", "FP32 [-1, 2]"]),
            (manifest(layers: #"[{"name": "proj", "type": "linear", "weight": "proj.weight", "bias": "proj.bias"}]"#),
             ["outputs[0] 'y'", "FP32 [-1, 2, 4]"]),
            (manifest(extra: #", "labels": ["a"]"#), ["'labels' has 1 names", "2 channels over 1 steps"]),
        ]
        for (text, fragments) in cases {
            let model = try folder(text)
            assertError(try ModelLoader.load(directory: model.path), contains: fragments + [ModelLoader.manifestFileName])
        }
    }
}
