import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// A sequential classifier's training layers: the conv (im2col + GEMM, col2im), pooling and per-step
/// linear backward passes against finite differences, and the forward pass against the served model.
final class TrainableSequenceTests: XCTestCase {
    /// 2 channels × 12 steps → conv (N:M 2:4 window weights, k 4, same padding, ReLU) → max-pool 2
    /// → conv (BLAST b 2 r 2, k 2, dilation 2, causal, GELU) → global average pool → linear 4 → 3.
    func smallSequence() throws -> TrainableSequence {
        var rng = SeededRandom(seed: 5)
        let conv1 = try TrainableTestLayers.nm(&rng, outputs: 4, inputs: 8)
        let conv2 = TrainableTestLayers.blast(&rng, outputs: 4, inputs: 8, blocks: 2, rank: 2)
        let fc = PackedLayer(outputFeatures: 3, inputFeatures: 4, form: .dense(weight: rng.array(12)), bias: rng.array(3))
        let shape1 = TrainingKernels.Conv1dShape(length: 12, channels: 2, kernelSize: 4, stride: 1, dilation: 1, padding: (1, 2))
        let shape2 = TrainingKernels.Conv1dShape(length: 6, channels: 4, kernelSize: 2, stride: 1, dilation: 2, padding: (2, 0))
        XCTAssertEqual([shape1.outputLength, shape2.outputLength], [12, 6])
        let stages: [TrainableSequence.Stage] = [
            .conv(try TrainableLinear(conv1), shape1, .relu),
            .maxPool(.init(length: 12, channels: 4, kernelSize: 2, stride: 2)),
            .conv(try TrainableLinear(conv2), shape2, .gelu),
            .averagePool(.init(length: 6, channels: 4, kernelSize: 6, stride: 6)),
            .linear(try TrainableLinear(fc), steps: 1, .none),
        ]
        return TrainableSequence(stages: stages, names: ["conv1", "conv2", "fc"], inputLength: 12, inputChannels: 2, outputFeatures: 3)
    }

    func testGradientsMatchFiniteDifferences() throws {
        let model = try smallSequence()
        var rng = SeededRandom(seed: 9)
        let rows = 4, x = rng.array(rows * 24).map { 2 * $0 }, teacher = rng.array(rows * 3).map { 3 * $0 }
        let labels: [Int32] = [0, 2, 1, 2]
        func loss(_ grad: inout [Float], keep: Bool) -> Double {
            let out = model.forward(x, rows: rows, keep: keep)
            return TrainingKernels.distillationLoss(logits: out, teacher: teacher, labels: labels, rows: rows, cols: 3, alpha: 0.5, temperature: 2,
                                                    gradient: &grad)!
        }
        var grad = [Float](repeating: 0, count: rows * 3)
        _ = loss(&grad, keep: true)
        model.backward(grad)
        var checked = 0
        for (t, tensor) in model.tensors.enumerated() {
            for i in 0..<tensor.values.count where tensor.mask?[i] ?? 1 == 1 {
                let saved = tensor.values[i], h: Float = 1e-2
                tensor.values[i] = saved + h
                model.layers.forEach { $0.materialize() }
                let plus = loss(&grad, keep: false)
                tensor.values[i] = saved - h
                model.layers.forEach { $0.materialize() }
                let minus = loss(&grad, keep: false)
                tensor.values[i] = saved
                model.layers.forEach { $0.materialize() }
                let numeric = (plus - minus) / Double(2 * h)
                XCTAssertEqual(Double(tensor.gradient[i]), numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "tensor \(t) element \(i)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 60)
        // Pruned weights get no update: their gradient entries are masked in the Adam step, and the
        // mask has exactly 2 of every 4.
        let mask = try XCTUnwrap(model.tensors[0].mask)
        XCTAssertEqual(mask.count, 32)
        for g in stride(from: 0, to: 32, by: 4) { XCTAssertEqual(mask[g..<g + 4].reduce(0) { $0 + Int($1) }, 2) }
    }

    /// The student's forward pass (im2col + training GEMMs) gives the served model's probabilities,
    /// and the teacher the dense model's.
    func testTrainingForwardEqualsTheServedModel() throws {
        let split = try SafeTensors(contentsOf: GunPoint.directory + "/test.safetensors")
        let x = try split.tensor(named: "inputs"), rows = 150
        let source = try SafeTensors(contentsOf: GunPoint.directory + "/model.safetensors")
        let manifest = try ModelManifest.load(path: GunPoint.directory + "/model.json")
        let (served, builder) = try GunPoint.open(GunPoint.convNM)
        let (dense, _) = try GunPoint.open(.dense)
        let (student, teacher) = try TrainableSequence.models(manifest: manifest, builder: builder, source: source)
        XCTAssertEqual(student.names, ["conv1", "conv2", "conv3", "fc"])
        for (model, trainable) in [(served, student), (dense, teacher)] {
            var logits = trainable.forward(x, rows: rows, keep: false)
            VectorKernels.softmaxRows(&logits, columns: 2)
            let probabilities = model.forward(Matrix(rows: rows, columns: 150, values: x)).values
            for (a, b) in zip(logits, probabilities) { XCTAssertEqual(a, b, accuracy: 2e-5) }
        }
    }

    /// 20 epochs of 4 steps (50 series, batch 16).
}
