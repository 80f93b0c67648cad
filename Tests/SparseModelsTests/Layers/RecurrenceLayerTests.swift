import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// h_t = a ⊙ h_{t−1} + B·x_t + b built from a manifest entry: the scan, the matrix and the timed
/// choice all equal a float64 loop, for every state and for the last one; the matrix form is
/// refused past its size limit naming the layer.
final class RecurrenceLayerTests: XCTestCase {
    private let state = 3, channels = 2, steps = 6

    private func file(_ random: inout SeededRandom) throws -> (SafeTensors, b: [Float], a: [Float], bias: [Float]) {
        let b = random.array(state * channels), a = [0.5, -0.25, 0.9] as [Float], bias = random.array(state)
        var writer = SafeTensorsWriter()
        try writer.add("r.weight", floats: b, shape: [state, channels])
        try writer.add("r.decay", floats: a, shape: [state])
        try writer.add("r.bias", floats: bias, shape: [state])
        return (try SafeTensors(data: writer.serialized(), source: "r.safetensors"), b, a, bias)
    }

    private func reference(_ x: [Float], b: [Float], a: [Float], bias: [Float]) -> [Float] {
        var h = [Double](repeating: 0, count: state), out: [Float] = []
        for t in 0..<steps {
            for d in 0..<state {
                var input = Double(bias[d])
                for c in 0..<channels { input += Double(b[d * channels + c]) * Double(x[t * channels + c]) }
                h[d] = Double(a[d]) * h[d] + input
            }
            out += h.map(Float.init)
        }
        return out
    }

    func testEveryFormEqualsTheLoop() throws {
        var random = SeededRandom(seed: 41)
        let (weights, b, a, bias) = try file(&random)
        let x = random.array(steps * channels)
        let expected = reference(x, b: b, a: a, bias: bias)
        for form in [RecurrenceLayerSpec.Form.scan, .matrix, .auto] {
            for output in [RecurrenceLayerSpec.Output.sequence, .last] {
                let spec = RecurrenceLayerSpec(name: "r", weight: "r.weight", decay: "r.decay", bias: "r.bias", output: output, form: form)
                let layer = try RecurrenceLayer(spec: spec, layerName: "r", builder: LinearLayerBuilder(weights: weights, timeLayers: false), steps: steps, inChannels: channels, fail: { ModelLoadError(file: "model.json", $0) })
                let label = "\(form) \(output)"
                XCTAssertEqual(layer.outputLength, output == .last ? 1 : steps, label)
                XCTAssertEqual(layer.stateSize, state, label)
                XCTAssertEqual(layer.relativeError, 0, label)
                let got = layer.op.apply(Matrix(rows: 1, columns: steps * channels, values: x)).values
                let want = output == .last ? Array(expected.suffix(state)) : expected
                XCTAssertEqual(got.count, want.count, label)
                for i in want.indices { XCTAssertEqual(got[i], want[i], accuracy: 1e-5, "\(label) [\(i)]") }
                if form == .auto { XCTAssertTrue(layer.op.storage.contains("timed slower"), layer.op.storage) }
            }
        }
    }

    func testMatrixFormIsBoundedAndCountsItsSource() throws {
        var random = SeededRandom(seed: 42)
        let (weights, b, _, _) = try file(&random)
        let tooLong = RecurrenceLayer.matrixLimit / (state * channels) + 1
        let spec = RecurrenceLayerSpec(name: "r", weight: "r.weight", decay: "r.decay", output: .last, form: .matrix)
        assertError(try RecurrenceLayer(spec: spec, layerName: "r", builder: LinearLayerBuilder(weights: weights, timeLayers: false), steps: tooLong, inChannels: channels, fail: { ModelLoadError(file: "model.json", $0) }),
                    contains: ["model.json", "layer 'r': the matrix form would hold", "use form 'scan' or 'auto'"])
        let input = DenseWeights(weights: b, outputFeatures: state, inputFeatures: channels)
        let matrix = RecurrenceMatrix(input: input, bias: nil, decay: [1, 1, 1], steps: 4, lastOnly: false)
        XCTAssertEqual(matrix.parameterCount, state * channels + state, "B and a as stored, not the unrolled matrix")
        XCTAssertEqual(matrix.inputFeatures, 4 * channels)
        XCTAssertEqual(matrix.outputFeatures, 4 * state)
        let relabeled = Relabeled(matrix, storage: "shown")
        XCTAssertEqual(relabeled.storage, "shown")
        XCTAssertEqual(relabeled.parameterCount, matrix.parameterCount)
    }
}
