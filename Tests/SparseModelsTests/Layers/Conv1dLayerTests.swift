import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// A conv1d layer lowered to a banded operator equals direct convolution (PyTorch's definition,
/// zero padding) for each padding form, stride and dilation; a kernel longer than the padded
/// input is refused naming the layer and the numbers.
final class Conv1dLayerTests: XCTestCase {
    private let inChannels = 2, outChannels = 3, kernelSize = 3, length = 11

    private func layer(_ spec: Conv1dLayerSpec, length: Int? = nil, weight: [Float], bias: [Float]) throws -> Conv1dLayer {
        var writer = SafeTensorsWriter()
        try writer.add("c.weight", floats: weight, shape: [outChannels, inChannels, kernelSize])
        try writer.add("c.bias", floats: bias, shape: [outChannels])
        let file = try SafeTensors(data: writer.serialized(), source: "c.safetensors")
        return try Conv1dLayer(spec: spec, layerName: "c", builder: LinearLayerBuilder(weights: file, timeLayers: false),
                               inputLength: length ?? self.length, inChannels: inChannels, fail: { ModelLoadError(file: "model.json", $0) })
    }

    /// out[t, o] = b[o] + Σ_c Σ_j w[o, c, j] · x[t·stride + j·dilation − left, c], x zero outside.
    private func direct(_ x: [Float], weight w: [Float], bias: [Float], stride: Int, dilation: Int, left: Int, outputLength: Int) -> [Float] {
        var y = [Float](repeating: 0, count: outputLength * outChannels)
        for t in 0..<outputLength {
            for o in 0..<outChannels {
                var sum = Double(bias[o])
                for c in 0..<inChannels {
                    for j in 0..<kernelSize {
                        let s = t * stride + j * dilation - left
                        if s >= 0 && s < length { sum += Double(w[(o * inChannels + c) * kernelSize + j]) * Double(x[s * inChannels + c]) }
                    }
                }
                y[t * outChannels + o] = Float(sum)
            }
        }
        return y
    }

    func testEqualsDirectConvolution() throws {
        var random = SeededRandom(seed: 31)
        let w = random.array(outChannels * inChannels * kernelSize), b = random.array(outChannels)
        let x = random.array(length * inChannels)
        let cases: [(Conv1dPadding, stride: Int, dilation: Int, outputLength: Int, left: Int)] = [
            (.valid, 1, 1, 9, 0), (.same, 1, 1, 11, 1), (.causal, 1, 2, 11, 4), (.explicit(left: 2, right: 0), 2, 1, 6, 2),
            (.same, 1, 2, 11, 2), (.valid, 3, 2, 3, 0),
        ]
        for (padding, stride, dilation, outputLength, left) in cases {
            let conv = try layer(Conv1dLayerSpec(weight: "c.weight", bias: "c.bias", stride: stride, padding: padding, dilation: dilation),
                                 weight: w, bias: b)
            let label = "\(padding) stride \(stride) dilation \(dilation)"
            XCTAssertEqual(conv.outputLength, outputLength, label)
            XCTAssertEqual(conv.padding.left, left, label)
            XCTAssertEqual(conv.relativeError, 0, label)
            let got = conv.op.apply(Matrix(rows: 1, columns: length * inChannels, values: x)).values
            let want = direct(x, weight: w, bias: b, stride: stride, dilation: dilation, left: left, outputLength: outputLength)
            XCTAssertEqual(got.count, want.count, label)
            for i in want.indices { XCTAssertEqual(got[i], want[i], accuracy: 1e-5, "\(label) [\(i)]") }
        }
    }

    func testKernelLongerThanTheInputIsRefused() {
        let w = [Float](repeating: 1, count: outChannels * inChannels * kernelSize)
        assertError(try layer(Conv1dLayerSpec(weight: "c.weight", dilation: 5), length: 10, weight: w, bias: [0, 0, 0]),
                    contains: ["model.json", "layer 'c': the kernel spans 11 steps (size 3, dilation 5) but the padded input has 10 (10 steps + padding 0+0)"])
        XCTAssertNoThrow(try layer(Conv1dLayerSpec(weight: "c.weight", padding: .causal, dilation: 5), length: 10, weight: w, bias: [0, 0, 0]),
                         "causal padding makes room")
    }
}
