import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels
import SparseCompression

/// The layer builder's two sources on a tiny 8 → 8 → 4 mlp written by the test: dense weights
/// compressed by the plan (shapes, which layers stay dense, what it records, conv1d weights read
/// in their window form), and an artifact read as stored (its shapes and methods from the
/// metadata, widths checked against the chain, every listed layer used, no plan on top, no
/// artifact behind an unmarked manifest).
final class LinearLayerBuilderTests: XCTestCase {
    static let parameters: (w1: [Float], b1: [Float], w2: [Float], b2: [Float]) = {
        var random = SeededRandom(seed: 111)
        var w1 = random.array(64)
        for i in 0..<24 { w1[i] *= 0.02 }   // three weak fc1 neurons, which an ℓ1,∞ projection drops
        return (w1, random.array(8), random.array(32), random.array(4))
    }()
    var p: (w1: [Float], b1: [Float], w2: [Float], b2: [Float]) { Self.parameters }

    static let manifest = #"{"architecture": "mlp", "name": "tiny", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 8]}], "#
        + #""outputs": [{"name": "z", "datatype": "FP32", "shape": [-1, 4]}], "layers": ["#
        + #"{"name": "fc1", "type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"}, "#
        + #"{"name": "fc2", "type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"}]}"#

    var tensors: [(name: String, values: [Float], shape: [Int])] {
        [("fc1.weight", p.w1, [8, 8]), ("fc1.bias", p.b1, [8]), ("fc2.weight", p.w2, [4, 8]), ("fc2.bias", p.b2, [4])]
    }

    func weights() throws -> SafeTensors {
        var writer = SafeTensorsWriter()
        for t in tensors { try writer.add(t.name, floats: t.values, shape: t.shape) }
        try writer.add("conv.weight", floats: (0..<24).map(Float.init), shape: [4, 2, 3])
        return try SafeTensors(data: writer.serialized(), source: "tiny/model.safetensors")
    }

    let fc2NM = CompressionPlan(method: .dense, overrides: [("fc2", .nm(n: 2, m: 4))])

    func outputs(_ op: any LinearOperator, _ x: [Float]) -> [Float] {
        op.apply(Matrix(rows: x.count / op.inputFeatures, columns: op.inputFeatures, values: x)).values
    }

    func testDenseSourceCompressedByThePlan() throws {
        let builder = LinearLayerBuilder(weights: try weights(), plan: fc2NM, compressor: WeightCompressor(), timeLayers: false)
        XCTAssertNil(builder.artifact)
        XCTAssertEqual(builder.activations, fc2NM.activations)
        let shape = try builder.shape(of: "fc2", weight: "fc2.weight")
        XCTAssertEqual([shape.outputs, shape.inputs], [4, 8])
        assertError(try builder.shape(of: "b", weight: "fc1.bias"),
                    contains: ["tiny/model.safetensors", "layer 'b' needs a 2-D [out, in] weight, the tensor has shape [8]"])
        XCTAssertTrue(builder.isDense("fc1"))
        XCTAssertFalse(builder.isDense("fc2"))

        let fc1 = try builder.linear("fc1", weight: "fc1.weight", bias: "fc1.bias", outputs: 8, inputs: 8)
        var rng = SeededRandom(seed: 112)
        let x = rng.array(2 * 8)
        var expected = [Float](repeating: 0, count: 16)
        for r in 0..<2 {
            for o in 0..<8 {
                var sum = p.b1[o]
                for k in 0..<8 { sum += x[r * 8 + k] * p.w1[o * 8 + k] }
                expected[r * 8 + o] = sum
            }
        }
        let y = outputs(fc1.op, x)
        for i in y.indices { XCTAssertEqual(y[i], expected[i], accuracy: 1e-5) }
        let fc2 = try builder.linear("fc2", weight: "fc2.weight", bias: nil, outputs: 4, inputs: 8)
        XCTAssertEqual(fc2.packed.layout, .nm(n: 2, m: 4, transposable: false))
        XCTAssertNil(fc2.packed.bias)
        XCTAssertEqual(builder.built.map(\.name), ["fc1", "fc2"])
        XCTAssertEqual(builder.built.map(\.weight), ["fc1.weight", "fc2.weight"])
        XCTAssertEqual(builder.built.map(\.bias), ["fc1.bias", nil])

        let dense = try builder.denseLayer("fc1", weight: "fc1.weight", bias: "fc1.bias", outputs: 8, inputs: 8)
        XCTAssertEqual(dense.weight, p.w1)
        XCTAssertEqual(dense.bias, p.b1)
        assertError(try builder.denseLayer("fc2", weight: "fc2.weight", bias: nil, outputs: 4, inputs: 8), contains: ["layer 'fc2' is not stored dense"])
        XCTAssertEqual(builder.built.count, 4, "denseLayer records the layer like linear")
        XCTAssertNoThrow(try builder.finish(), "nothing to check without an artifact")
    }

    /// A conv1d weight `[out, channels, k]` is built (and read back by `denseWeight`) in its window form.
    func testConv1dWeightsAreReadInTheirWindowForm() throws {
        let builder = LinearLayerBuilder(weights: try weights(), timeLayers: false)
        let conv = (0..<24).map(Float.init)
        let window = BandedOperator.windowWeights(conv, inChannels: 2, outChannels: 4, kernelSize: 3)
        XCTAssertNotEqual(window, conv)
        let layer = try builder.chain([.init(name: "conv", weight: "conv.weight", bias: nil, outputs: 4, inputs: 6, activations: [], feedsNext: false,
                                             layout: .conv1d(channels: 2, kernelSize: 3))])[0]
        guard case .dense(let w) = layer.packed.form else { return XCTFail("not dense: \(layer.packed.layout)") }
        XCTAssertEqual(w, window)
        XCTAssertEqual(try builder.denseWeight(of: "conv", tensor: "conv.weight", outputs: 4, inputs: 6), window)
        XCTAssertEqual(try builder.denseWeight(of: "fc2", tensor: "fc2.weight", outputs: 4, inputs: 8), p.w2, "other layers: [out, in]")
    }

    func testCompressionFailuresNameTheLayerAndMethod() throws {
        let builder = LinearLayerBuilder(weights: try weights(), plan: CompressionPlan(method: .nm(n: 2, m: 3)), compressor: WeightCompressor(),
                                         timeLayers: false)
        assertError(try builder.linear("fc1", weight: "fc1.weight", bias: nil, outputs: 8, inputs: 8),
                    contains: ["layer 'fc1' cannot be compressed as nm 2:3"])
        XCTAssertTrue(builder.built.isEmpty, "a failed layer is not recorded")
    }

    /// A folder with the tiny model and its artifact (by default fc1 2:4, fc2 dense).
    func artifact(_ plan: CompressionPlan = CompressionPlan(method: .dense, overrides: [("fc1", .nm(n: 2, m: 4))])) throws
        -> (source: ModelFolder, artifact: String) {
        let folder = try ModelFolder(self, manifest: Self.manifest, tensors: tensors)
        let out = folder.url.appendingPathComponent("artifact").path
        _ = try ArtifactWriter.write(source: folder.path, plan: plan, compressionJSON: #"{"method": "nm"}"#, toolVersion: "test", output: out)
        return (folder, out)
    }

    func open(_ directory: String, plan: CompressionPlan = .dense) throws -> LinearLayerBuilder {
        let path = ModelLoader.path(directory, ModelLoader.manifestFileName)
        return try LinearLayerBuilder(directory: directory, manifest: try ModelManifest.load(path: path), manifestPath: path, plan: plan,
                                      timeLayers: false)
    }

    func testArtifactLayersAreReadAsStored() throws {
        let (_, out) = try artifact()
        let builder = try open(out)
        XCTAssertNotNil(builder.artifact)
        let shape = try builder.shape(of: "fc1", weight: "unused")
        XCTAssertEqual([shape.outputs, shape.inputs], [8, 8], "from the metadata")
        XCTAssertFalse(builder.isDense("fc1"))
        XCTAssertTrue(builder.isDense("fc2"))
        let fc1 = try builder.linear("fc1", weight: "fc1.weight", bias: "fc1.bias", outputs: 8, inputs: 8)
        XCTAssertEqual(fc1.packed.layout, .nm(n: 2, m: 4, transposable: false))
        let reference = LinearLayerBuilder(weights: try weights(), plan: CompressionPlan(method: .nm(n: 2, m: 4)), compressor: WeightCompressor(),
                                           timeLayers: false)
        let compressed = try reference.linear("fc1", weight: "fc1.weight", bias: "fc1.bias", outputs: 8, inputs: 8)
        var rng = SeededRandom(seed: 113)
        let x = rng.array(3 * 8)
        XCTAssertEqual(outputs(fc1.op, x), outputs(compressed.op, x), "the stored layer is the one compressed")
        assertError(try builder.finish(), contains: ["metadata lists layer 'fc2', which the model does not have"])
        _ = try builder.linear("fc2", weight: "fc2.weight", bias: "fc2.bias", outputs: 4, inputs: 8)
        XCTAssertNoThrow(try builder.finish())
    }

    /// ℓ1,∞ rows drop fc1 neurons: fc1 writes, and fc2 reads, fewer than 8 features, which only the
    /// chain of both agrees with.
    func testArtifactWidthsAreCheckedAgainstTheChain() throws {
        let (_, out) = try artifact(CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.5))]))
        func link(_ name: String, outputs: Int, feedsNext: Bool) -> LinearLayerBuilder.ChainLink {
            .init(name: name, weight: name + ".weight", bias: name + ".bias", outputs: outputs, inputs: 8, activations: feedsNext ? [.relu] : [],
                  feedsNext: feedsNext)
        }
        let layers = try open(out).chain([link("fc1", outputs: 8, feedsNext: true), link("fc2", outputs: 4, feedsNext: false)])
        let kept = layers[0].op.outputFeatures
        XCTAssertLessThan(kept, 8, "some fc1 neurons dropped")
        XCTAssertEqual(layers[1].op.inputFeatures, kept)
        assertError(try open(out).chain([link("fc1", outputs: 8, feedsNext: false)]),
                    contains: ["fc1.l1inf.weight", "layer 'fc1' runs 8 → \(kept) features, but its neighbours need 8 → 8"])
        assertError(try open(out).chain([link("fc2", outputs: 4, feedsNext: false)]),
                    contains: ["layer 'fc2' runs \(kept) → 4 features, but its neighbours need 8 → 4"])
    }

    func testArtifactRefusals() throws {
        let (source, out) = try artifact()
        assertError(try open(out, plan: CompressionPlan(method: .nm(n: 2, m: 4))),
                    contains: ["model.json", "its compression is fixed, so no compression may be applied to it"])
        // the artifact's weights behind the source's (unmarked) manifest
        let mixed = try ModelFolder(self, manifest: Self.manifest)
        try FileManager.default.copyItem(atPath: out + "/" + ModelLoader.weightsFileName,
                                         toPath: mixed.url.appendingPathComponent(ModelLoader.weightsFileName).path)
        assertError(try open(mixed.path), contains: ["is a compressed artifact but this manifest has no \"compressed\" marker"])
        XCTAssertNoThrow(try open(source.path, plan: CompressionPlan(method: .nm(n: 2, m: 4))), "a dense source takes a plan")
    }
}
