import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// The shared layer-building steps: a weight's rank and input width checked against the previous
/// layer (messages naming the layer, tensor and unit), compression failures naming the layer and
/// method, and summary rows.
final class LayerBuildingTests: XCTestCase {
    private func weights() throws -> SafeTensors {
        var writer = SafeTensorsWriter()
        try writer.add("fc.weight", floats: [Float](repeating: 0.5, count: 12), shape: [3, 4])
        try writer.add("fc.bias", floats: [1, 2, 3], shape: [3])
        try writer.add("conv.weight", floats: [Float](repeating: 1, count: 24), shape: [4, 2, 3])
        try writer.add("empty.weight", floats: [], shape: [0, 4])
        return try SafeTensors(data: writer.serialized(), source: "m/model.safetensors")
    }

    func testWeightShapes() throws {
        let w = try weights()
        XCTAssertEqual(try LayerBuilding.weightShape(w, "fc.weight", layer: "fc", rank: 2, layout: "[out, in]", inputs: 4, unit: "features"), [3, 4])
        XCTAssertEqual(try LayerBuilding.weightShape(w, "conv.weight", layer: "conv", rank: 3, layout: "[out, in, k]", inputs: 2, unit: "channels"), [4, 2, 3])
        assertError(try LayerBuilding.weightShape(w, "fc.weight", layer: "fc", rank: 2, layout: "[out, in]", inputs: 5, unit: "features"),
                    contains: ["m/model.safetensors", "tensor 'fc.weight'", "layer 'fc' weight has shape [3, 4]: 4 inputs, but the previous layer produces 5 features"])
        assertError(try LayerBuilding.weightShape(w, "conv.weight", layer: "conv", rank: 3, layout: "[out, in, k]", inputs: 3, unit: "channels"),
                    contains: ["2 input channels, but the previous layer produces 3 channels"])
        assertError(try LayerBuilding.weightShape(w, "conv.weight", layer: "c", rank: 2, layout: "[out, in]", inputs: 2, unit: "features"),
                    contains: ["layer 'c' needs a 2-D [out, in] weight, the tensor has shape [4, 2, 3]"])
        assertError(try LayerBuilding.weightShape(w, "empty.weight", layer: "e", rank: 2, layout: "[out, in]", inputs: 4, unit: "features"),
                    contains: ["the tensor has shape [0, 4]"])
    }

    func testLinearLayerAndCompressionFailures() throws {
        let w = try weights()
        let fail = { (message: String) in ModelLoadError(file: "m/model.json", message) }
        let spec = try JSONDecoder().decode(LinearLayerSpec.self, from: Data(#"{"name": "fc", "weight": "fc.weight", "bias": "fc.bias"}"#.utf8))
        let builder = LinearLayerBuilder(weights: w, timeLayers: false)
        let (built, outputs) = try LayerBuilding.linear(spec, layer: "fc", builder: builder, inputs: 4, fail: fail)
        XCTAssertEqual(outputs, 3)
        XCTAssertEqual(built.facts.relativeError, 0)
        XCTAssertEqual(built.op.apply(Matrix(rows: 1, columns: 4, values: [1, 1, 1, 1])).values, [3, 4, 5])
        XCTAssertEqual(builder.built.map(\.name), ["fc"], "the builder records the layer (an artifact stores it)")
        let nm = LinearLayerBuilder(weights: w, plan: CompressionPlan(method: .nm(n: 2, m: 4)), timeLayers: false)
        assertError(try LayerBuilding.linear(spec, layer: "fc", builder: nm, inputs: 4, fail: fail),
                    contains: ["m/model.json", "layer 'fc' cannot be compressed as nm 2:4", "needs a layer compressor"])
    }

    func testSummaryRows() {
        let dense = DenseWeights(weights: [Float](repeating: 1, count: 6), outputFeatures: 2, inputFeatures: 3, bias: [0, 0])
        let row = LayerBuilding.summary("fc", type: "linear", inputs: 3, outputs: 2, activation: .relu, op: dense, error: 0.1)
        XCTAssertEqual(row.activation, "relu")
        XCTAssertEqual(row.parameterCount, 8)
        XCTAssertEqual(row.storage, dense.storage)
        XCTAssertEqual(row.density, 1)
        XCTAssertEqual(row.relativeError, 0.1)
        let softmax = LayerBuilding.summary("sm", type: "softmax", inputs: 2, outputs: 2, activation: Activation.none)
        XCTAssertNil(softmax.activation, "no activation is left out, not 'none'")
        XCTAssertEqual(softmax.parameterCount, 0)
        XCTAssertNil(softmax.storage)
        XCTAssertEqual(LayerBuilding.summary("x", type: "linear", inputs: 3, outputs: 2, activation: nil, op: dense, density: 0.5).density, 0.5)
    }
}
