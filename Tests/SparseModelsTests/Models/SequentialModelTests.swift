import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
import SparseCompression

/// The `sequential` architecture: the GunPoint CNN reproduces its training script's reference;
/// conv1d layers equal direct convolution and recurrences their unrolled matrix in float64 (matrix
/// and scan forms, T = 128) through the manifest; pooling and flatten; compression by layer glob; strict
/// validation naming the layer.
final class SequentialModelTests: XCTestCase {
    var timeseriesDirectory: String { repositoryRoot().appendingPathComponent("models/timeseries").path }

    // MARK: - The trained model

    func testGunPointMatchesPythonReference() throws {
        let model = try XCTUnwrap(try ModelLoader.load(directory: timeseriesDirectory) as? SequentialModel)
        XCTAssertEqual(model.architecture, "sequential")
        XCTAssertEqual(model.inputs.map(\.shape), [[-1, 1, 150]])
        XCTAssertEqual(model.inputs[0].alternativeShapes, [[-1, 150]])
        let split = try SafeTensors(contentsOf: repositoryRoot().appendingPathComponent("models/timeseries/test.safetensors").path)
        let inputs = try split.tensor(named: "inputs"), labels = try split.int64Tensor(named: "labels")
        let reference = try split.tensor(named: "probabilities")
        let n = labels.count
        XCTAssertEqual(try split.info(named: "inputs").shape, [n, 1, 150])

        for isa in InstructionSet.available {
            let p = model.forward(Matrix(rows: n, columns: 150, values: inputs), isa: isa)
            let maxError = zip(p.values, reference).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(maxError, 1e-5, "\(isa)")
            print("gunpoint-cnn on \(isa): max |p - p_ref| = \(maxError) over \(n) series")
        }
        var correct = 0
        for (batch, shape) in [(1, [1, 150]), (32, [1, 150]), (n, [])] as [(Int, [Int])] {
            var predicted: [Int64] = []
            for start in stride(from: 0, to: n, by: batch) {
                let rows = min(batch, n - start)
                let x = Tensor(shape: [rows] + (shape.isEmpty ? [150] : shape), storage: .fp32(Array(inputs[start * 150 ..< (start + rows) * 150])))
                let out = try model.infer(["input": x])
                guard case .int64(let labelsOut)? = out["label"]?.storage else { return XCTFail("no label output") }
                XCTAssertEqual(out["probabilities"]?.shape, [rows, 2])
                predicted += labelsOut
            }
            let expected = (0..<n).map { i in Int64(reference[2 * i + 1] > reference[2 * i] ? 1 : 0) }
            XCTAssertEqual(predicted, expected, "batch \(batch)")
            correct = zip(predicted, labels).filter { $0 == $1 }.count
        }
        XCTAssertEqual(Double(correct) / Double(n), 0.9733, accuracy: 0.0001)
        let summary = model.summary
        XCTAssertEqual(summary.layers.map(\.type), ["conv1d", "maxpool1d", "conv1d", "maxpool1d", "conv1d", "globalavgpool1d", "linear", "softmax"])
        XCTAssertEqual(summary.layers[0].storage, "banded 150x[dense]")
        XCTAssertEqual(summary.parameterCount, 8 * 7 + 8 + 16 * 8 * 5 + 16 + 32 * 16 * 3 + 32 + 2 * 32 + 2)
    }

    // MARK: - Operators through the manifest

    /// Direct Conv1d in float64 over a channel-major input x[c * length + t]; channel-major output.
    func directConv(_ x: [Float], length: Int, cin: Int, cout: Int, ks: Int, weight: [Float], bias: [Float],
                    stride: Int, pad: (left: Int, right: Int), dilation: Int) -> [Double] {
        let outLength = (length + pad.left + pad.right - dilation * (ks - 1) - 1) / stride + 1
        var y = [Double](repeating: 0, count: cout * outLength)
        for o in 0..<cout {
            for t in 0..<outLength {
                var sum = Double(bias[o])
                for k in 0..<ks {
                    let pos = t * stride + k * dilation - pad.left
                    guard pos >= 0 && pos < length else { continue }
                    for c in 0..<cin { sum += Double(weight[(o * cin + c) * ks + k]) * Double(x[c * length + pos]) }
                }
                y[o * outLength + t] = sum
            }
        }
        return y
    }

    func testConv1dLayerEqualsDirectConvolution() throws {
        var random = SeededRandom(seed: 91)
        let cases: [(cin: Int, cout: Int, ks: Int, length: Int, stride: Int, padding: Any, pad: (Int, Int), dilation: Int)] = [
            (1, 4, 5, 30, 1, "same", (2, 2), 1),
            (3, 8, 4, 25, 1, "same", (1, 2), 1),
            (2, 5, 3, 40, 1, "causal", (4, 0), 2),
            (4, 6, 3, 33, 2, "valid", (0, 0), 1),
            (5, 7, 7, 50, 3, [2, 1] as [Int], (2, 1), 2),
            (6, 3, 2, 9, 4, 3, (3, 3), 3),
            (16, 32, 3, 64, 1, 1, (1, 1), 1),
        ]
        for (i, c) in cases.enumerated() {
            let weight = random.array(c.cout * c.cin * c.ks), bias = random.array(c.cout)
            let outLength = (c.length + c.pad.0 + c.pad.1 - c.dilation * (c.ks - 1) - 1) / c.stride + 1
            let dir = try writeModel(
                layers: [["name": "conv", "type": "conv1d", "bias": "conv.bias", "stride": c.stride, "padding": c.padding, "dilation": c.dilation]],
                tensors: ["conv.weight": (weight, [c.cout, c.cin, c.ks]), "conv.bias": (bias, [c.cout])],
                input: [-1, c.cin, c.length], outputs: [("y", "FP32", [-1, c.cout, outLength])])
            let model = try ModelLoader.load(directory: dir)
            for batch in [1, 3] {
                let x = random.array(batch * c.cin * c.length)
                let out = try model.infer(["input": Tensor(shape: [batch, c.cin, c.length], storage: .fp32(x))])
                guard case .fp32(let y)? = out["y"]?.storage else { return XCTFail("no output") }
                XCTAssertEqual(out["y"]?.shape, [batch, c.cout, outLength])
                for b in 0..<batch {
                    let expected = directConv(Array(x[(b * c.cin * c.length)..<((b + 1) * c.cin * c.length)]), length: c.length, cin: c.cin,
                                              cout: c.cout, ks: c.ks, weight: weight, bias: bias, stride: c.stride, pad: c.pad, dilation: c.dilation)
                    let got = y[(b * expected.count)..<((b + 1) * expected.count)]
                    let worst = zip(got, expected).map { abs(Double($0) - $1) }.max()!
                    XCTAssertLessThanOrEqual(worst, 1e-5, "case \(i) batch \(b)")
                }
            }
        }
    }

    /// A recurrence over T = 128 steps: the matrix and the scan form both equal the float64
    /// recurrence (and so each other), for every state and for the last one, dense and with B at 2:4.
    func testRecurrenceMatrixEqualsScanAtT128() throws {
        var random = SeededRandom(seed: 92)
        let (steps, c, d) = (128, 4, 8)
        let weight = random.array(d * c), bias = random.array(d), decay = random.array(d).map { 0.9 * $0 }
        let tensors: [String: ([Float], [Int])] = ["rec.weight": (weight, [d, c]), "rec.decay": (decay, [d]), "rec.bias": (bias, [d])]
        let x = random.array(2 * steps * c)
        for output in ["sequence", "last"] {
            var results: [String: [Float]] = [:]
            for form in ["matrix", "scan", "auto"] {
                let outShape = output == "last" ? [-1, d] : [-1, d, steps]
                let dir = try writeModel(layers: [["name": "rec", "type": "recurrence", "bias": "rec.bias", "output": output, "form": form]],
                                         tensors: tensors, input: [-1, c, steps], outputs: [("h", "FP32", outShape)])
                let model = try XCTUnwrap(try ModelLoader.load(directory: dir) as? SequentialModel)
                let storage = model.summary.layers[0].storage ?? ""
                XCTAssertTrue(form == "auto" || storage.hasPrefix("recurrence \(form)"), storage)
                let out = try model.infer(["input": Tensor(shape: [2, c, steps], storage: .fp32(x))])
                guard case .fp32(let h)? = out["h"]?.storage else { return XCTFail("no output") }
                results[form] = h
                for b in 0..<2 {
                    // the input is channel-major; the loop reads time-major
                    let row = timeMajor(x, row: b, steps: steps, channels: c)
                    let states = directRecurrence(row, steps: steps, c: c, weight: weight, bias: bias, decay: decay)
                    for o in 0..<d {
                        for t in (output == "last" ? steps - 1 : 0)..<steps {
                            let got = Double(output == "last" ? h[b * d + o] : h[(b * d + o) * steps + t])
                            let want: Double = states[t * d + o]
                            XCTAssertEqual(got, want, accuracy: 1e-5 * max(1, abs(want)), "\(form) \(output) b=\(b) o=\(o) t=\(t)")
                        }
                    }
                }
            }
            let worst = zip(results["matrix"]!, results["scan"]!).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, "matrix vs scan (\(output))")
        }
        // Compressed B: both forms compute the same recurrence over the pruned weights.
        let plan = CompressionPlan(method: .pinned(.nm(n: 2, m: 4)))
        var outputs: [[Float]] = []
        for form in ["matrix", "scan"] {
            let dir = try writeModel(layers: [["name": "rec", "type": "recurrence", "output": "last", "form": form]], tensors: tensors,
                                     input: [-1, c, steps], outputs: [("h", "FP32", [-1, d])])
            let model = try XCTUnwrap(try ModelLoader.load(directory: dir, compression: plan, compressor: WeightCompressor()) as? SequentialModel)
            XCTAssertEqual(model.summary.layers[0].density ?? 0, Double(d * c / 2) / Double(d * c + d), accuracy: 1e-9)
            XCTAssertTrue(model.summary.layers[0].storage?.contains("nm 2:4") ?? false, model.summary.layers[0].storage ?? "")
            guard case .fp32(let h)? = try model.infer(["input": Tensor(shape: [2, c, steps], storage: .fp32(x))])["h"]?.storage else {
                return XCTFail("no output")
            }
            outputs.append(h)
        }
        let pruned = NMWeights.magnitudeMask(weight, outputFeatures: d, inputFeatures: c, n: 2, m: 4)
        let states = directRecurrence(timeMajor(x, row: 0, steps: steps, channels: c), steps: steps, c: c, weight: pruned, bias: nil, decay: decay)
        for o in 0..<d {
            let want: Double = states[(steps - 1) * d + o]
            XCTAssertEqual(Double(outputs[0][o]), want, accuracy: 1e-5 * max(1, abs(want)))
            XCTAssertEqual(Double(outputs[1][o]), want, accuracy: 1e-5 * max(1, abs(want)))
        }
    }

    /// Row `row` of channel-major `x` (channels × steps per row) in time-major order.
    func timeMajor(_ x: [Float], row: Int, steps: Int, channels: Int) -> [Float] {
        var out = [Float](repeating: 0, count: steps * channels)
        for t in 0..<steps { for ch in 0..<channels { out[t * channels + ch] = x[(row * channels + ch) * steps + t] } }
        return out
    }

    /// Every state h_t of one time-major row (steps × d values) in float64, from the unrolled
    /// lower-triangular matrix (which LinearRecurrenceTests checks against the loop).
    func directRecurrence(_ x: [Float], steps: Int, c: Int, weight: [Float], bias: [Float]?, decay: [Float]) -> [Double] {
        let (w, b) = LinearRecurrence.lowerTriangular(weight: weight, bias: bias, decay: decay, steps: steps, lastOnly: false)
        let columns = steps * c
        return (0..<(steps * decay.count)).map { r in
            var sum = Double(b?[r] ?? 0)
            for k in 0..<columns { sum += Double(w[r * columns + k]) * Double(x[k]) }
            return sum
        }
    }

    /// Strided max/average pooling, global pools and flatten (PyTorch's channel-major order)
    /// against direct loops; a per-step linear layer after flatten takes PyTorch's weight.
    func testPoolingFlattenAndPerStepLinear() throws {
        var random = SeededRandom(seed: 93)
        let (c, length) = (3, 11)
        let x = random.array(2 * c * length)
        func value(_ b: Int, _ ch: Int, _ t: Int) -> Float { x[b * c * length + ch * length + t] }
        for (type, size, stride) in [("maxpool1d", 3, 2), ("avgpool1d", 2, 2), ("maxpool1d", 4, 1), ("globalmaxpool1d", length, 1), ("globalavgpool1d", length, 1)] {
            var layer: [String: Any] = ["type": type]
            if !type.hasPrefix("global") { layer["kernelSize"] = size; layer["stride"] = stride }
            let outSteps = (length - size) / stride + 1
            let dir = try writeModel(layers: [layer], tensors: [:], input: [-1, c, length],
                                     outputs: [("y", "FP32", outSteps == 1 ? [-1, c] : [-1, c, outSteps])])
            let out = try ModelLoader.load(directory: dir).infer(["input": Tensor(shape: [2, c, length], storage: .fp32(x))])
            guard case .fp32(let y)? = out["y"]?.storage else { return XCTFail("no output") }
            for b in 0..<2 {
                for ch in 0..<c {
                    for t in 0..<outSteps {
                        let window = (0..<size).map { value(b, ch, t * stride + $0) }
                        let expected = type.contains("max") ? window.max()! : window.reduce(0, +) / Float(size)
                        XCTAssertEqual(y[(b * c + ch) * outSteps + t], expected, accuracy: 1e-6, "\(type) b=\(b) c=\(ch) t=\(t)")
                    }
                }
            }
        }
        // flatten then linear: y = W · x.flatten() with x [c, length] as in PyTorch
        let w = random.array(2 * c * length)
        let dir = try writeModel(layers: [["type": "flatten"], ["name": "fc", "type": "linear"]], tensors: ["fc.weight": (w, [2, c * length])],
                                 input: [-1, c, length], outputs: [("y", "FP32", [-1, 2])])
        let out = try ModelLoader.load(directory: dir).infer(["input": Tensor(shape: [2, c, length], storage: .fp32(x))])
        guard case .fp32(let y)? = out["y"]?.storage else { return XCTFail("no output") }
        for b in 0..<2 {
            for o in 0..<2 {
                var expected = 0.0
                for i in 0..<(c * length) { expected += Double(w[o * c * length + i]) * Double(x[b * c * length + i]) }
                XCTAssertEqual(Double(y[b * 2 + o]), expected, accuracy: 1e-5)
            }
        }
        // a linear layer before pooling acts on each step's channels (a 1×1 convolution)
        let pointwise = random.array(4 * c)
        let dir2 = try writeModel(layers: [["name": "pw", "type": "linear"]], tensors: ["pw.weight": (pointwise, [4, c])],
                                  input: [-1, c, length], outputs: [("y", "FP32", [-1, 4, length])])
        let out2 = try ModelLoader.load(directory: dir2).infer(["input": Tensor(shape: [2, c, length], storage: .fp32(x))])
        guard case .fp32(let y2)? = out2["y"]?.storage else { return XCTFail("no output") }
        for b in 0..<2 {
            for o in 0..<4 {
                for t in 0..<length {
                    var expected = 0.0
                    for i in 0..<c { expected += Double(pointwise[o * c + i]) * Double(value(b, i, t)) }
                    XCTAssertEqual(Double(y2[(b * 4 + o) * length + t]), expected, accuracy: 1e-5)
                }
            }
        }
    }

    // MARK: - Compression

    /// N:M on the conv layers by glob equals the dense model on the pruned window weights; the
    /// summary shows the banded operator over the N:M inner one.
    func testConvLayersCompressByGlob() throws {
        let plan = CompressionPlan(method: .dense, overrides: [("conv*", .pinned(.nm(n: 2, m: 4)))])
        let compressed = try XCTUnwrap(try ModelLoader.load(directory: timeseriesDirectory, compression: plan, compressor: WeightCompressor()) as? SequentialModel)
        let layers = compressed.summary.layers
        XCTAssertEqual(layers.filter { $0.storage?.contains("nm 2:4") ?? false }.map(\.name), ["conv1", "conv2", "conv3"])
        XCTAssertEqual(layers.first { $0.name == "fc" }?.storage, "dense")
        XCTAssertLessThan(compressed.summary.density, 0.6)

        // the same network with the pruned weights written out, loaded dense
        let weights = try SafeTensors(contentsOf: timeseriesDirectory + "/model.safetensors")
        var tensors: [String: ([Float], [Int])] = [:]
        for name in weights.names {
            let info = try weights.info(named: name)
            var values = try weights.tensor(named: name)
            if name.hasPrefix("conv"), name.hasSuffix(".weight") {
                let (o, i, k) = (info.shape[0], info.shape[1], info.shape[2])
                let window = BandedOperator.windowWeights(values, inChannels: i, outChannels: o, kernelSize: k)
                let kept = NMWeights.magnitudeMask(window, outputFeatures: o, inputFeatures: k * i, n: 2, m: 4)
                for oo in 0..<o { for ii in 0..<i { for kk in 0..<k where kept[oo * k * i + kk * i + ii] == 0 { values[(oo * i + ii) * k + kk] = 0 } } }
            }
            tensors[name] = (values, info.shape)
        }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: timeseriesDirectory + "/model.json"))) as! [String: Any]
        let dir = try writeModel(layers: manifest["layers"] as! [[String: Any]], tensors: tensors, input: [-1, 1, 150],
                                 outputs: [("probabilities", "FP32", [-1, 2])])
        let pruned = try ModelLoader.load(directory: dir)
        let split = try SafeTensors(contentsOf: timeseriesDirectory + "/test.safetensors")
        let x = Tensor(shape: [40, 150], storage: .fp32(Array(try split.tensor(named: "inputs")[0..<(40 * 150)])))
        guard case .fp32(let a)? = try compressed.infer(["input": x])["probabilities"]?.storage,
              case .fp32(let b)? = try pruned.infer(["input": x])["probabilities"]?.storage else { return XCTFail("no output") }
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max()!, 1e-5)
    }

    // MARK: - Validation

    func testManifestValidationNamesTheLayer() throws {
        let w = [Float](repeating: 0.5, count: 4 * 2 * 3)
        let conv: [String: ([Float], [Int])] = ["c.weight": (w, [4, 2, 3])]
        func expectError(_ layers: [[String: Any]], tensors: [String: ([Float], [Int])] = conv, input: [Int] = [-1, 2, 10],
                         outputs: [(String, String, [Int])] = [("y", "FP32", [-1, 4])], _ fragments: [String], line: UInt = #line) {
            do {
                let dir = try writeModel(layers: layers, tensors: tensors, input: input, outputs: outputs)
                _ = try ModelLoader.load(directory: dir)
                XCTFail("loaded; expected an error with \(fragments)", line: line)
            } catch {
                let message = "\(error)"
                for fragment in fragments { XCTAssertTrue(message.contains(fragment), "'\(fragment)' not in: \(message)", line: line) }
            }
        }
        expectError([["name": "c", "type": "conv2d"]], ["unknown layer type 'conv2d'", "conv1d", "layers[0]"])
        expectError([["name": "c", "type": "conv1d", "kernel_size": 3]], ["layers[0].kernel_size", "unknown key"])
        expectError([["name": "c", "type": "conv1d", "padding": "full"]], ["unknown padding 'full'"])
        expectError([["name": "c", "type": "conv1d", "padding": "same", "stride": 2]], ["'same' needs stride 1"])
        expectError([["name": "c", "type": "conv1d", "dilation": 0]], ["layers[0].dilation", "at least 1"])
        expectError([["name": "c", "type": "conv1d"]], input: [-1, 3, 10], ["layer 'c'", "2 input channels", "produces 3 channels"])
        expectError([["name": "c", "type": "conv1d", "dilation": 5]], input: [-1, 2, 10], ["layer 'c'", "spans 11 steps", "padded input has 10"])
        expectError([["name": "c", "type": "conv1d"], ["name": "p", "type": "maxpool1d", "kernelSize": 9]],
                    ["layer 'p'", "9 steps is longer than its input of 8 steps"])
        expectError([["name": "p", "type": "avgpool1d"]], tensors: [:], ["kernelSize"])
        expectError([["name": "g", "type": "globalavgpool1d", "kernelSize": 2]], tensors: [:], ["unknown key 'kernelSize'"])
        expectError([["name": "c", "type": "conv1d"]], ["outputs[0] 'y'", "FP32 [-1, 4, 8]"])
        expectError([["name": "r", "type": "recurrence", "form": "unrolled"]], tensors: [:], ["unknown value 'unrolled'"])
        expectError([["name": "r", "type": "recurrence"]], tensors: ["r.weight": ([1, 2, 3, 4], [2, 2])], ["r.decay"])
        expectError([["name": "c", "type": "conv1d"], ["name": "fc", "type": "linear"]], tensors: conv.merging(["fc.weight": ([Float](repeating: 1, count: 10), [2, 5])]) { $1 },
                    ["layer 'fc'", "5 input channels", "4 channels per step"])
        expectError([["name": "c", "type": "conv1d"]], input: [-1, 2, 3, 4], ["[-1, length] or [-1, channels, length]"])
        // an mlp names the architecture its layer needs
        let mlpDir = try writeModel(layers: [["name": "c", "type": "conv1d"]], tensors: conv, input: [-1, 20], outputs: [("y", "FP32", [-1, 4])],
                                    architecture: "mlp")
        XCTAssertThrowsError(try ModelLoader.load(directory: mlpDir)) { XCTAssertTrue("\($0)".contains("needs the 'sequential' architecture"), "\($0)") }
    }

    /// A one-channel model takes [n, length] and [n, 1, length] alike; other shapes fail clearly.
    func testOneChannelInputShapes() throws {
        let model = try ModelLoader.load(directory: timeseriesDirectory)
        let values = [Float](repeating: 0.25, count: 2 * 150)
        let a = try model.infer(["input": Tensor(shape: [2, 150], storage: .fp32(values))])
        let b = try model.infer(["input": Tensor(shape: [2, 1, 150], storage: .fp32(values))])
        XCTAssertEqual(a, b)
        XCTAssertThrowsError(try model.infer(["input": Tensor(shape: [2, 2, 75], storage: .fp32(values))])) {
            XCTAssertTrue("\($0)".contains("[-1, 1, 150] or [-1, 150]"), "\($0)")
        }
    }

    // MARK: - Helpers

    /// Writes model.json + model.safetensors for a sequential model into a fresh directory.
    func writeModel(layers: [[String: Any]], tensors: [String: ([Float], [Int])], input: [Int],
                    outputs: [(name: String, datatype: String, shape: [Int])], architecture: String = "sequential") throws -> String {
        let dir = try makeTemporaryDirectory()
        let manifest: [String: Any] = [
            "architecture": architecture,
            "inputs": [["name": "input", "datatype": "FP32", "shape": input]],
            "outputs": outputs.map { ["name": $0.name, "datatype": $0.datatype, "shape": $0.shape] },
            "layers": layers,
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(to: dir.appendingPathComponent("model.json"))
        var writer = SafeTensorsWriter()
        for name in tensors.keys.sorted() { try writer.add(name, floats: tensors[name]!.0, shape: tensors[name]!.1) }
        if tensors.isEmpty { try writer.add("unused", floats: [0], shape: [1]) }
        try writer.write(to: dir.appendingPathComponent("model.safetensors").path)
        return dir.path
    }
}
