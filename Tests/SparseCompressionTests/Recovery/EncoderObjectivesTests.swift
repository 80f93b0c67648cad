import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels
@testable import SparseCompression

/// The two objectives of encoder recovery on tiny random encoder layers (hidden 8, 2 heads): the
/// loss each returns for a batch of sequences against a plain reference, gradients that agree with
/// that loss (central differences), and no backward pass when the loss is not finite.
final class EncoderObjectivesTests: XCTestCase {
    let shape = EncoderShape(hidden: 8, heads: 2, intermediate: 16, epsilon: 1e-5)
    let lengths = [3, 1, 4]

    func layer(seed: UInt64) throws -> TrainableEncoderLayer {
        var rng = SeededRandom(seed: seed)
        let (h, f) = (shape.hidden, shape.intermediate)
        let shapes = [(h, h), (h, h), (h, h), (h, h), (f, h), (h, f)]
        let linears = try shapes.map { out, inp in
            try TrainableLinear(PackedLayer(outputFeatures: out, inputFeatures: inp, form: .dense(weight: rng.array(out * inp).map { 0.5 * $0 }),
                                            bias: rng.array(out).map { 0.1 * $0 }))
        }
        let norms = (0..<2).map { _ in (rng.array(h).map { 1 + 0.3 * $0 }, rng.array(h).map { 0.2 * $0 }) }
        return TrainableEncoderLayer(shape: shape, linears: linears, attentionNorm: norms[0], outputNorm: norms[1])
    }

    func states(seed: UInt64) -> PackedStates {
        var rng = SeededRandom(seed: seed)
        let spans = PackedStates.spans(lengths: lengths)
        return PackedStates(spans: spans, width: shape.hidden, values: rng.array(lengths.reduce(0, +) * shape.hidden))
    }

    /// Checks d loss / d θ of `tensors` (the gradients the first call left) against central
    /// differences of the objective's own loss, on a few elements of each tensor.
    func checkGradients(_ objective: (ArraySlice<Int>) -> Double, batch: ArraySlice<Int>, tensors: [TrainableTensor],
                        materialize: () -> Void, file: StaticString = #filePath, line: UInt = #line) {
        for t in tensors { t.zeroGradient() }
        _ = objective(batch)
        let gradients = tensors.map(\.gradient)
        var checked = 0
        for (k, tensor) in tensors.enumerated() {
            for i in stride(from: 0, to: tensor.values.count, by: max(1, tensor.values.count / 5)) {
                let saved = tensor.values[i], step: Float = 1e-2
                tensor.values[i] = saved + step
                materialize()
                let plus = objective(batch)
                tensor.values[i] = saved - step
                materialize()
                let minus = objective(batch)
                tensor.values[i] = saved
                materialize()
                let numeric = (plus - minus) / Double(2 * step)
                XCTAssertEqual(Double(gradients[k][i]), numeric, accuracy: 2e-3 + 3e-2 * abs(numeric), "tensor \(k) element \(i)",
                               file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 30, file: file, line: line)
        XCTAssertTrue(gradients.contains { $0.contains { $0 != 0 } }, "some gradient", file: file, line: line)
    }

    /// Block-wise: Σ (y − target)² / (tokens · width) over the batch's sequences.
    func testLayerObjectiveIsTheMeanSquaredErrorOfTheBatch() throws {
        let l = try layer(seed: 51), inputs = states(seed: 52), targets = states(seed: 53)
        let objective = EncoderObjectives.layer(l, inputs: inputs, targets: targets)
        let batch: ArraySlice<Int> = [2, 0]
        let x = inputs.gather(batch), t = targets.gather(batch)
        let y = l.forward(x.values, spans: x.spans, keep: false).y
        var expected = 0.0
        for (a, b) in zip(y, t.values) { expected += Double(a - b) * Double(a - b) }
        expected /= Double(7 * shape.hidden)
        XCTAssertEqual(objective(batch), expected, accuracy: 1e-6 * expected)
        checkGradients(objective, batch: batch, tensors: l.tensors, materialize: { l.linears.forEach { $0.materialize() } })
    }

    func testLayerObjectiveVanishesOnTheLayersOwnOutputs() throws {
        let l = try layer(seed: 54), inputs = states(seed: 55)
        let objective = EncoderObjectives.layer(l, inputs: inputs, targets: l.forwardAll(inputs))
        XCTAssertEqual(objective([0, 1, 2]), 0, accuracy: 1e-10)
        for tensor in l.tensors { XCTAssertTrue(tensor.gradient.allSatisfy { abs($0) < 1e-5 }) }
    }

    /// End to end: both layers from the embedding states, then mean pooling and L2 normalisation;
    /// the loss is the batch mean of ‖e − target‖².
    func testEmbeddingObjectiveRunsEveryLayerAndPools() throws {
        let layers = [try layer(seed: 56), try layer(seed: 57)], inputs = states(seed: 58)
        var rng = SeededRandom(seed: 59)
        let targets = rng.array(lengths.count * shape.hidden)
        let pooling = SentencePooling(pooling: .mean, normalize: true)
        let objective = EncoderObjectives.embeddings(layers, inputs: inputs, targets: targets, pooling: pooling)
        let batch: ArraySlice<Int> = [1, 2]
        var x = inputs.gather(batch)
        for l in layers { x.values = l.forward(x.values, spans: x.spans, keep: false).y }
        var expected = 0.0
        let w = shape.hidden
        for (i, (sequence, span)) in zip(batch, x.spans).enumerated() {
            var mean = [Float](repeating: 0, count: w)
            for r in span.start ..< span.start + span.length {
                for c in 0..<w { mean[c] += x.values[r * w + c] / Float(span.length) }
            }
            var norm: Float = 0
            for v in mean { norm += v * v }
            norm = norm.squareRoot()
            for c in 0..<w {
                let d = Double(mean[c] / norm - targets[sequence * w + c])
                expected += d * d
            }
            XCTAssertEqual(span.length, lengths[sequence], "sequence \(i) of the batch")
        }
        expected /= 2
        XCTAssertEqual(objective(batch), expected, accuracy: 1e-5 * expected)
        let linears = layers.flatMap(\.linears)
        checkGradients(objective, batch: batch, tensors: layers.flatMap(\.tensors), materialize: { linears.forEach { $0.materialize() } })
    }

    /// With hidden-state targets, the loss adds weight × the mean over layers of each layer's
    /// output MSE per element; the gradients follow the combined loss.
    func testEmbeddingObjectiveAddsTheHiddenStateTerm() throws {
        let layers = [try layer(seed: 63), try layer(seed: 64)], inputs = states(seed: 65)
        var rng = SeededRandom(seed: 66)
        let targets = rng.array(lengths.count * shape.hidden), hidden = [states(seed: 67), states(seed: 68)]
        let pooling = SentencePooling(pooling: .mean, normalize: true), weight: Float = 0.7
        let plain = EncoderObjectives.embeddings(layers, inputs: inputs, targets: targets, pooling: pooling)
        let objective = EncoderObjectives.embeddings(layers, inputs: inputs, targets: targets, pooling: pooling,
                                                     hidden: .init(weight: weight, states: hidden))
        let batch: ArraySlice<Int> = [2, 0]
        var x = inputs.gather(batch), term = 0.0
        for (l, target) in zip(layers, hidden) {
            x.values = l.forward(x.values, spans: x.spans, keep: false).y
            let t = target.gather(batch).values
            term += zip(x.values, t).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(x.values.count)
        }
        let expected = plain(batch) + Double(weight) * term / Double(layers.count)
        XCTAssertGreaterThan(term, 0.01)
        XCTAssertEqual(objective(batch), expected, accuracy: 1e-5 * expected)
        let linears = layers.flatMap(\.linears)
        checkGradients(objective, batch: batch, tensors: layers.flatMap(\.tensors), materialize: { linears.forEach { $0.materialize() } })
    }

    func testNoBackwardPassWhenTheLossIsNotFinite() throws {
        let l = try layer(seed: 60), inputs = states(seed: 61)
        var nan = states(seed: 62)
        nan.values[3] = .nan
        XCTAssertTrue(EncoderObjectives.layer(l, inputs: inputs, targets: nan)([0]).isNaN)
        let targets = [Float](repeating: .nan, count: lengths.count * shape.hidden)
        let e2e = EncoderObjectives.embeddings([l], inputs: inputs, targets: targets, pooling: SentencePooling(pooling: .cls, normalize: false))
        XCTAssertTrue(e2e([0, 1]).isNaN)
        for tensor in l.tensors { XCTAssertTrue(tensor.gradient.allSatisfy { $0 == 0 }, "gradients untouched") }
    }
}
