import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// The backward pass of one BERT encoder layer (attention over packed sequences, add & norm, GELU
/// feed-forward, LayerNorm gains and biases) against central differences, on a tiny layer with
/// random weights whose six linear layers take every trainable form: N:M, transposable N:M, dense, BLAST, CSR.
final class TrainableEncoderLayerTests: XCTestCase {
    let shape = EncoderShape(hidden: 8, heads: 2, intermediate: 16, epsilon: 1e-5)
    let spans = [TransformerKernels.Sequence(start: 0, length: 3), .init(start: 3, length: 1), .init(start: 4, length: 5)]

    func nm(_ rng: inout SeededRandom, outputs: Int, inputs: Int, transposable: Bool) throws -> PackedLayer {
        let w = rng.array(outputs * inputs)
        // Transposable: in every 4 × 4 block, rows and columns keep exactly two (i + j mod 4 < 2).
        let mask = transposable ? (0..<outputs * inputs).map { ($0 / inputs + $0 % inputs) % 4 < 2 }
            : NMWeights.magnitudeKept(w, outputFeatures: outputs, inputFeatures: inputs, n: 2, m: 4)
        let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: outputs, inputFeatures: inputs, n: 2, m: 4)
        return PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .nm(n: 2, m: 4, transposable: transposable, values: values, indexWords: words),
                           bias: rng.array(outputs))
    }

    func layer(seed: UInt64) throws -> TrainableEncoderLayer {
        var rng = SeededRandom(seed: seed)
        let (h, f) = (shape.hidden, shape.intermediate)
        let csrColumns: [Int32] = (0..<f).flatMap { r in (0..<h).filter { ($0 * 3 + r) % 5 < 2 }.map(Int32.init) }
        var rowStart: [Int32] = [0]
        for r in 0..<f { rowStart.append(rowStart[r] + Int32((0..<h).filter { ($0 * 3 + r) % 5 < 2 }.count)) }
        let packed = [
            try nm(&rng, outputs: h, inputs: h, transposable: false),
            try nm(&rng, outputs: h, inputs: h, transposable: true),
            PackedLayer(outputFeatures: h, inputFeatures: h, form: .dense(weight: rng.array(h * h)), bias: rng.array(h)),
            PackedLayer(outputFeatures: h, inputFeatures: h, form: .blast(rowBlocks: 2, columnBlocks: 2, rank: 3, u: rng.array(h * 3), v: rng.array(h * 3), s: rng.array(12)),
                        bias: rng.array(h)),
            PackedLayer(outputFeatures: f, inputFeatures: h, form: .csr(rowStart: rowStart, columns: csrColumns, values: rng.array(csrColumns.count)), bias: rng.array(f)),
            try nm(&rng, outputs: h, inputs: f, transposable: false),
        ]
        let norms = (0..<2).map { _ in (rng.array(h).map { 1 + 0.3 * $0 }, rng.array(h).map { 0.2 * $0 }) }
        return TrainableEncoderLayer(shape: shape, linears: try packed.map { try TrainableLinear($0) }, attentionNorm: norms[0], outputNorm: norms[1],
                                     trainsNorms: true)
    }

    func testBackwardMatchesFiniteDifferences() throws {
        let layer = try layer(seed: 41)
        var rng = SeededRandom(seed: 42)
        let tokens = 9, x = rng.array(tokens * shape.hidden).map { 2 * $0 }, g = rng.array(tokens * shape.hidden)
        func loss(_ input: [Float]) -> Double {
            zip(layer.forward(input, spans: spans, keep: false).y, g).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let (_, cache) = layer.forward(x, spans: spans, keep: true)
        let dx = layer.backward(g, cache: try XCTUnwrap(cache), inputGradient: true)
        let step: Float = 1e-2
        func central(_ set: (Float) -> Void, at value: Float) -> Double {
            set(value + step)
            let plus = loss(x)
            set(value - step)
            let minus = loss(x)
            set(value)
            return (plus - minus) / Double(2 * step)
        }
        var checked = 0
        for (t, tensor) in layer.tensors.enumerated() {
            for i in stride(from: 0, to: tensor.values.count, by: max(1, tensor.values.count / 7)) where tensor.mask?[i] ?? 1 == 1 {
                let numeric = central({ tensor.values[i] = $0; layer.linears.forEach { $0.materialize() } }, at: tensor.values[i])
                XCTAssertEqual(Double(tensor.gradient[i]), numeric, accuracy: 3e-3 + 2e-2 * abs(numeric), "tensor \(t) element \(i)")
                checked += 1
            }
        }
        for i in stride(from: 0, to: x.count, by: 5) {
            var shifted = x
            shifted[i] += step
            let plus = loss(shifted)
            shifted[i] -= 2 * step
            let numeric = (plus - loss(shifted)) / Double(2 * step)
            XCTAssertEqual(Double(dx[i]), numeric, accuracy: 3e-3 + 2e-2 * abs(numeric), "dx[\(i)]")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 100)
    }

    /// A sequence's outputs do not depend on the other sequences of the batch (no attention across them).
    func testSequencesAreIndependent() throws {
        let layer = try layer(seed: 43)
        var rng = SeededRandom(seed: 44)
        let x = rng.array(9 * shape.hidden)
        let together = layer.forward(x, spans: spans, keep: false).y
        let alone = layer.forward(Array(x[4 * 8 ..< 9 * 8]), spans: [.init(start: 0, length: 5)], keep: false).y
        for i in alone.indices { XCTAssertEqual(together[4 * 8 + i], alone[i], accuracy: 1e-5) }
    }
}
