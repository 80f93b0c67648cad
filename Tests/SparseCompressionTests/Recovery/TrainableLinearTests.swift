import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Training with the structure fixed: a packed layer's trainable weight is the weight its operator
/// runs, an AdamW step under a full gradient moves only kept weights, and the trained layer packs
/// back into the same stored form (N:M index stream, CSR pattern, BLAST shape) computing Ŵ.
final class TrainableLinearTests: XCTestCase {
    private let outputs = 8, inputs = 16

    private func packed(_ method: LayerCompression, seed: UInt64) throws -> PackedLayer {
        var random = SeededRandom(seed: seed)
        return try method.pack(weights: random.array(outputs * inputs), outputFeatures: outputs, inputFeatures: inputs,
                               bias: random.array(outputs)).packed
    }

    func testWeightIsTheOperatorsAndStepsKeepTheStructure() throws {
        let methods: [LayerCompression] = [.nm(n: 2, m: 4), .transposableNM(n: 2, m: 4), .csr(density: 0.3), .dense]
        for (k, method) in methods.enumerated() {
            let p = try packed(method, seed: 100 + UInt64(k))
            let layer = try TrainableLinear(p)
            let reference = try XCTUnwrap(p.denseWeights(try p.makeOperator()))
            XCTAssertEqual(layer.weight, reference, "\(method): Ŵ is what the operator multiplies by")
            let kept = reference.filter { $0 != 0 }.count
            XCTAssertEqual(layer.trainableCount, kept + outputs, "\(method): kept weights and the bias")
            for t in layer.tensors { for i in t.gradient.indices { t.gradient[i] = 1 } }
            for t in layer.tensors { t.step(TrainingKernels.Adam(learningRate: 0.01), step: 1) }
            layer.materialize()
            for i in reference.indices {
                if reference[i] == 0 {
                    XCTAssertEqual(layer.weight[i], 0, "\(method): pruned weight \(i) stays zero")
                } else {
                    XCTAssertEqual(layer.weight[i], reference[i] - 0.01, accuracy: 1e-4, "\(method): kept weight \(i) took the step")
                }
            }
            let repacked = try layer.repacked()
            XCTAssertEqual(repacked.layout, p.layout, "\(method): the same stored form")
            XCTAssertEqual(try XCTUnwrap(repacked.denseWeights(try repacked.makeOperator())), layer.weight, "\(method)")
        }
    }

    /// A quantized layer trains as its dequantised fp32 form (same mask, same factors) and packs
    /// back quantized with the same scheme, close to the trained Ŵ.
    func testQuantizedLayersTrainInFP32AndAreQuantizedAgain() throws {
        let cases: [(LayerCompression, WeightQuantization)] = [
            (.nm(n: 2, m: 4), .int8Dynamic), (.transposableNM(n: 2, m: 4), .int8(.channel)), (.nm(n: 4, m: 8), .bf16),
            (.csr(density: 0.4), .int8(.channel)), (.dense, .int8(.group(8))),
            (.blast(blocks: 2, rank: 3, parameterRatio: nil, iterations: 10), .int8Dynamic),
        ]
        for (k, (method, scheme)) in cases.enumerated() {
            let stored = try packed(method, seed: 200 + UInt64(k)).quantized(scheme)
            let layer = try TrainableLinear(stored)
            let reference = try XCTUnwrap(stored.denseWeights(try stored.makeOperator()))
            for i in reference.indices { XCTAssertEqual(layer.weight[i], reference[i], accuracy: 1e-5, "\(method) \(scheme): trains the stored weights") }
            for t in layer.tensors { for i in t.gradient.indices { t.gradient[i] = 1 } }
            for t in layer.tensors { t.step(TrainingKernels.Adam(learningRate: 0.01), step: 1) }
            layer.materialize()
            let repacked = try layer.repacked()
            XCTAssertEqual(repacked.quantizedScheme, scheme, "\(method): quantized again")
            XCTAssertEqual(repacked.layout, stored.layout, "\(method) \(scheme): the same stored form")
            let trained = try XCTUnwrap(repacked.denseWeights(try repacked.makeOperator()))
            XCTAssertLessThan(LayerCompression.relativeError(layer.weight, trained), scheme == .bf16 ? 0.005 : 0.02, "\(method) \(scheme)")
            if case .blast = method { continue }
            for i in reference.indices where reference[i] == 0 && layer.weight[i] == 0 {
                XCTAssertEqual(trained[i], 0, "\(method) \(scheme): pruned weight \(i) stays zero")
            }
            XCTAssertNotEqual(trained, reference, "\(method) \(scheme): the step changed the weights")
        }
    }

    /// The strided forward of LinearPasses equals the packed operator, and its backward gives the
    /// weight gradient dyᵀ x on kept positions and dx = dy Ŵ.
    func testForwardAndBackwardPasses() throws {
        let p = try packed(.nm(n: 2, m: 4), seed: 120)
        let layer = try TrainableLinear(p)
        var random = SeededRandom(seed: 121)
        let rows = 3, x = random.array(rows * inputs)
        var y = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { layer.forward(px.baseAddress!, ldx: inputs, rows: rows, into: $0.baseAddress!, ldy: outputs) }
        }
        let expected = try p.makeOperator().apply(Matrix(rows: rows, columns: inputs, values: x)).values
        for i in y.indices { XCTAssertEqual(y[i], expected[i], accuracy: 1e-5) }
        let dy = random.array(rows * outputs)
        var dx = [Float](repeating: 0, count: rows * inputs)
        for t in layer.tensors { t.zeroGradient() }
        dy.withUnsafeBufferPointer { pdy in
            x.withUnsafeBufferPointer { px in
                dx.withUnsafeMutableBufferPointer {
                    layer.backward(pdy.baseAddress!, lddy: outputs, x: px.baseAddress!, ldx: inputs, rows: rows, dx: $0.baseAddress!, lddx: inputs)
                }
            }
        }
        for r in 0..<rows {
            for j in 0..<inputs {
                let want = (0..<outputs).reduce(Float(0)) { $0 + dy[r * outputs + $1] * layer.weight[$1 * inputs + j] }
                XCTAssertEqual(dx[r * inputs + j], want, accuracy: 1e-5, "dx[\(r), \(j)]")
            }
        }
        guard case .masked(let w) = layer.factors else { return XCTFail("N:M trains a masked weight") }
        for o in 0..<outputs {
            for j in 0..<inputs {
                let want = (0..<rows).reduce(Float(0)) { $0 + dy[$1 * outputs + o] * x[$1 * inputs + j] }
                XCTAssertEqual(w.gradient[o * inputs + j], want, accuracy: 1e-5, "dW[\(o), \(j)]")
            }
        }
        let db = try XCTUnwrap(layer.bias).gradient
        for o in 0..<outputs { XCTAssertEqual(db[o], (0..<rows).reduce(Float(0)) { $0 + dy[$1 * outputs + o] }, accuracy: 1e-5) }
    }
}
