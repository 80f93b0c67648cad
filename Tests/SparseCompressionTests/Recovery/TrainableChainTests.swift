import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels
@testable import SparseCompression

/// A feed-forward chain of trainable linear layers and activations: its forward pass against a
/// plain-loop reference, its backward pass against the closed-form gradients of Σ g·y, gradients
/// that add up over calls, and a forward pass without `keep` that leaves the kept one alone.
/// (Gradients of every stored form by finite differences: RecoveryTrainingTests.)
final class TrainableChainTests: XCTestCase {
    let inputs = 5, hidden = 6, outputs = 3

    /// The weights and biases of two dense layers, inputs → hidden (`first` activation) → outputs (none).
    func parameters(seed: UInt64) -> (w1: [Float], b1: [Float], w2: [Float], b2: [Float]) {
        var rng = SeededRandom(seed: seed)
        return (rng.array(hidden * inputs), rng.array(hidden), rng.array(outputs * hidden), rng.array(outputs))
    }

    func chain(seed: UInt64 = 5, first: Activation = .relu) throws -> TrainableChain {
        let p = parameters(seed: seed)
        let l1 = PackedLayer(outputFeatures: hidden, inputFeatures: inputs, form: .dense(weight: p.w1), bias: p.b1)
        let l2 = PackedLayer(outputFeatures: outputs, inputFeatures: hidden, form: .dense(weight: p.w2), bias: p.b2)
        return TrainableChain([.init(layer: try TrainableLinear(l1), activation: first), .init(layer: try TrainableLinear(l2), activation: .none)])
    }

    func testForwardIsTheLayersThenTheirActivations() throws {
        var rng = SeededRandom(seed: 6)
        let rows = 4, x = rng.array(rows * inputs).map { 2 * $0 }
        for activation in [Activation.relu, .gelu, .none] {
            let c = try chain(first: activation), p = parameters(seed: 5)
            XCTAssertEqual([c.inputFeatures, c.outputFeatures, c.layers.count], [inputs, outputs, 2])
            var a1 = TrainableTestLayers.affine(x, rows: rows, p.w1, p.b1, outputs: hidden, inputs: inputs)
            activation.apply(to: &a1)
            let expected = TrainableTestLayers.affine(a1, rows: rows, p.w2, p.b2, outputs: outputs, inputs: hidden)
            let y = c.forward(x, rows: rows, keep: false)
            XCTAssertEqual(y.count, expected.count)
            for i in y.indices { XCTAssertEqual(y[i], expected[i], accuracy: 1e-5, "\(activation) output \(i)") }
        }
        let empty = TrainableChain([])
        XCTAssertEqual([empty.inputFeatures, empty.outputFeatures], [0, 0])
    }

    /// For L = Σ g·y: dW2 = gᵀ·a1, db2 = Σ_rows g, dz1 = (g·W2) ⊙ relu'(z1), dW1 = dz1ᵀ·x, db1 = Σ_rows dz1.
    func testBackwardGivesTheClosedFormGradients() throws {
        var rng = SeededRandom(seed: 7)
        let rows = 4, x = rng.array(rows * inputs).map { 2 * $0 }, g = rng.array(rows * outputs)
        let c = try chain(), p = parameters(seed: 5)
        _ = c.forward(x, rows: rows, keep: true)
        c.backward(g)
        let z1 = TrainableTestLayers.affine(x, rows: rows, p.w1, p.b1, outputs: hidden, inputs: inputs), a1 = z1.map { max(0, $0) }
        var dw2 = [Float](repeating: 0, count: outputs * hidden), db2 = [Float](repeating: 0, count: outputs)
        var dz1 = [Float](repeating: 0, count: rows * hidden)
        var dw1 = [Float](repeating: 0, count: hidden * inputs), db1 = [Float](repeating: 0, count: hidden)
        for r in 0..<rows {
            for o in 0..<outputs {
                db2[o] += g[r * outputs + o]
                for h in 0..<hidden { dw2[o * hidden + h] += g[r * outputs + o] * a1[r * hidden + h] }
            }
            for h in 0..<hidden where z1[r * hidden + h] > 0 {
                for o in 0..<outputs { dz1[r * hidden + h] += g[r * outputs + o] * p.w2[o * hidden + h] }
            }
            for h in 0..<hidden {
                db1[h] += dz1[r * hidden + h]
                for k in 0..<inputs { dw1[h * inputs + k] += dz1[r * hidden + h] * x[r * inputs + k] }
            }
        }
        let expected = [dw1, db1, dw2, db2], got = c.tensors.map(\.gradient)
        XCTAssertEqual(got.count, 4, "weight and bias of each layer")
        for (t, (a, b)) in zip(got, expected).enumerated() {
            XCTAssertEqual(a.count, b.count, "tensor \(t)")
            for i in a.indices { XCTAssertEqual(a[i], b[i], accuracy: 1e-4, "tensor \(t) element \(i)") }
        }
        XCTAssertTrue(dz1.contains(0) && dz1.contains { $0 != 0 }, "the ReLU cuts some paths and keeps others")
    }

    func testGradientsAddUpOverBackwardCalls() throws {
        var rng = SeededRandom(seed: 8)
        let rows = 3, x = rng.array(rows * inputs), g = rng.array(rows * outputs)
        let once = try chain(), twice = try chain()
        _ = once.forward(x, rows: rows, keep: true)
        once.backward(g)
        _ = twice.forward(x, rows: rows, keep: true)
        twice.backward(g)
        twice.backward(g)
        for (a, b) in zip(once.tensors, twice.tensors) {
            for i in a.gradient.indices { XCTAssertEqual(2 * a.gradient[i], b.gradient[i], accuracy: 1e-5) }
        }
    }

    /// An evaluation pass (`keep: false`, other rows) between training forward and backward changes nothing.
    func testForwardWithoutKeepLeavesTheKeptPassAlone() throws {
        var rng = SeededRandom(seed: 9)
        let x = rng.array(4 * inputs), other = rng.array(2 * inputs), g = rng.array(4 * outputs)
        let plain = try chain(), interrupted = try chain()
        _ = plain.forward(x, rows: 4, keep: true)
        plain.backward(g)
        _ = interrupted.forward(x, rows: 4, keep: true)
        _ = interrupted.forward(other, rows: 2, keep: false)
        interrupted.backward(g)
        for (a, b) in zip(plain.tensors, interrupted.tensors) { XCTAssertEqual(a.gradient, b.gradient) }
    }
}
