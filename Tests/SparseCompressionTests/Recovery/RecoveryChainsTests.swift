import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels
@testable import SparseCompression

/// The student and teacher chains of an mlp classifier, from a tiny 8 → 8 → 4 model written by the
/// test: the student runs the compressed layers, the teacher the source's dense weights, a separate
/// activation layer folds into the linear layer before it; every model it cannot train is refused
/// by name before training; `recover` hands back each trained layer by name.
final class RecoveryChainsTests: XCTestCase {
    static let parameters: (w1: [Float], b1: [Float], w2: [Float], b2: [Float]) = {
        var random = SeededRandom(seed: 91)
        return (random.array(64), random.array(8), random.array(32), random.array(4))
    }()
    let w1 = RecoveryChainsTests.parameters.w1, b1 = RecoveryChainsTests.parameters.b1
    let w2 = RecoveryChainsTests.parameters.w2, b2 = RecoveryChainsTests.parameters.b2

    func writer() throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter()
        try writer.add("fc1.weight", floats: w1, shape: [8, 8])
        try writer.add("fc1.bias", floats: b1, shape: [8])
        try writer.add("fc2.weight", floats: w2, shape: [4, 8])
        try writer.add("fc2.bias", floats: b2, shape: [4])
        return writer
    }

    func source() throws -> SafeTensors { try SafeTensors(data: try writer().serialized(), source: "tiny/model.safetensors") }

    static let fc1 = #"{"name": "fc1", "type": "linear", "weight": "fc1.weight", "bias": "fc1.bias"}"#
    static let fc2 = #"{"name": "fc2", "type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"}"#
    static let gelu = #"{"type": "activation", "activation": "gelu"}"#
    static let softmax = #"{"type": "softmax"}"#

    static func manifestJSON(_ layers: [String], architecture: String = "mlp") -> String {
        #"{"architecture": "\#(architecture)", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 8]}], "#
            + #""outputs": [{"name": "p", "datatype": "FP32", "shape": [-1, 4]}], "layers": [\#(layers.joined(separator: ", "))]}"#
    }

    func manifest(_ layers: [String], architecture: String = "mlp") throws -> ModelManifest {
        try ModelManifest.decode(Data(Self.manifestJSON(layers, architecture: architecture).utf8), source: "tiny/model.json")
    }

    /// A builder that compressed fc1 (and fc2 unless `only`) with `plan`.
    func builder(_ plan: CompressionPlan = CompressionPlan(method: .nm(n: 2, m: 4)), only: Bool = false) throws -> LinearLayerBuilder {
        let b = LinearLayerBuilder(weights: try source(), plan: plan, compressor: WeightCompressor(), timeLayers: false)
        _ = try b.linear("fc1", weight: "fc1.weight", bias: "fc1.bias", outputs: 8, inputs: 8)
        if !only { _ = try b.linear("fc2", weight: "fc2.weight", bias: "fc2.bias", outputs: 4, inputs: 8) }
        return b
    }

    func testStudentRunsTheCompressedLayersAndTeacherTheSource() throws {
        let b = try builder()
        let (student, teacher) = try ClassifierRecovery.chains(manifest: try manifest([Self.fc1, Self.gelu, Self.fc2, Self.softmax]), builder: b,
                                                               source: try source())
        XCTAssertEqual(student.stages.map(\.activation), [.gelu, Activation.none], "the activation layer folds into fc1")
        XCTAssertEqual(teacher.stages.map(\.activation), [.gelu, Activation.none])
        var rng = SeededRandom(seed: 92)
        let rows = 3, x = rng.array(rows * 8)
        // teacher: the dense logits, before the softmax
        var h = TrainableTestLayers.affine(x, rows: rows, w1, b1, outputs: 8, inputs: 8)
        Activation.gelu.apply(to: &h)
        let logits = TrainableTestLayers.affine(h, rows: rows, w2, b2, outputs: 4, inputs: 8)
        let t = teacher.forward(x, rows: rows, keep: false)
        for i in logits.indices { XCTAssertEqual(t[i], logits[i], accuracy: 1e-4, "teacher logit \(i)") }
        // student: the operators the builder built
        let ops = b.built.map(\.layer.op)
        let hidden = ops[0].apply(Matrix(rows: rows, columns: 8, values: x), activation: .gelu)
        let expected = ops[1].apply(hidden).values, s = student.forward(x, rows: rows, keep: false)
        for i in expected.indices { XCTAssertEqual(s[i], expected[i], accuracy: 1e-4, "student logit \(i)") }
        XCTAssertNotEqual(s, t, "2:4 pruning changed the logits")
        XCTAssertEqual(Set(try ClassifierRecovery.compressedLayers(b).keys), ["fc1", "fc2"])
    }

    func testRefusalsNameTheLayer() throws {
        let b = try builder(), s = try source()
        let cases: [([String], String, String)] = [
            ([Self.fc1, Self.fc2], "sequential", "this model is 'sequential'"),
            ([#"{"name": "fc1", "type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"}"#, Self.gelu, Self.fc2], "mlp",
             "layer 'layers[1]': an activation must follow a linear layer without one"),
            ([Self.gelu, Self.fc1, Self.fc2], "mlp", "layer 'layers[0]': an activation must follow a linear layer without one"),
            ([Self.fc1, Self.softmax, Self.fc2], "mlp", "layer 'layers[1]': a softmax before the last layer cannot be trained"),
            ([Self.fc1, #"{"type": "flatten"}"#, Self.fc2], "mlp", "layer 'layers[1]' of type 'flatten' has no backward pass"),
            ([Self.fc1, #"{"type": "activation", "activation": "tanh"}"#, Self.fc2], "mlp", "layer 'fc1': activation 'tanh' has no backward kernel"),
        ]
        for (layers, architecture, message) in cases {
            assertError(try ClassifierRecovery.chains(manifest: try manifest(layers, architecture: architecture), builder: b, source: s),
                        contains: [message])
        }
        assertError(try ClassifierRecovery.chains(manifest: try manifest([Self.fc1, Self.fc2]), builder: try builder(only: true), source: s),
                    contains: ["layer 'fc2' was not built"])
        let dense = try builder(.dense)
        assertError(try ClassifierRecovery.chains(manifest: try manifest([Self.fc1, Self.fc2]), builder: dense, source: s),
                    contains: ["nothing to recover: the compression leaves every layer dense"])
        assertError(try ClassifierRecovery.compressedLayers(dense), contains: ["nothing to recover"])
    }

    /// `recover` on a model folder: every built layer comes back by name in its stored layout, trained.
    func testRecoverReturnsEachTrainedLayerByName() throws {
        let dir = try makeTemporaryDirectory()
        try Self.manifestJSON([Self.fc1, #"{"type": "activation", "activation": "relu"}"#, Self.fc2, Self.softmax])
            .write(to: dir.appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
        try writer().write(to: dir.appendingPathComponent("model.safetensors").path)
        var rng = SeededRandom(seed: 93), writer = SafeTensorsWriter()
        try writer.add("inputs", floats: rng.array(32 * 8), shape: [32, 8])
        try writer.add("labels", int64s: (0..<32).map { Int64($0 % 4) }, shape: [32])
        let samples = dir.appendingPathComponent("train.safetensors").path
        try writer.write(to: samples)
        let (_, opened) = try ModelLoader.open(directory: dir.path, compression: CompressionPlan(method: .nm(n: 2, m: 4)),
                                               compressor: WeightCompressor(), timeLayers: false)
        let b = try XCTUnwrap(opened)
        var options = RecoveryOptions()
        (options.epochs, options.batchSize, options.learningRate) = (2, 8, 1e-2)
        let result = try ClassifierRecovery.recover(directory: dir.path, builder: b, training: samples, heldOut: samples, options: options,
                                                    progress: { _ in }, shouldStop: { false })
        XCTAssertEqual(Set(result.layers.keys), ["fc1", "fc2"])
        for built in b.built {
            let trained = try XCTUnwrap(result.layers[built.name])
            XCTAssertEqual(trained.layout, built.layer.packed.layout, built.name)
            guard case let .nm(_, _, _, before, _) = built.layer.packed.form, case let .nm(_, _, _, after, _) = trained.form else {
                return XCTFail("\(built.name) is not N:M")
            }
            XCTAssertNotEqual(before, after, "\(built.name) trained")
        }
        XCTAssertEqual(result.report.steps, 8)
        XCTAssertEqual(result.report.heldOut?.samples, 32)
        XCTAssertTrue(result.tensors.isEmpty)
    }
}
