import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
import SparseModels
@testable import SparseCompression

final class L1InfCompactionTests: XCTestCase {
    var digitsDirectory: URL { repositoryRoot().appendingPathComponent("models/digits-mlp") }

    /// A copy of `directory`'s model whose linear weights are replaced by their ℓ1,∞ projections
    /// (per `plan`), to be loaded dense: the reference a compacted model must equal.
    func projectedCopy(of directory: URL, plan: CompressionPlan) throws -> URL {
        let out = try makeTemporaryDirectory()
        let manifestData = try Data(contentsOf: directory.appendingPathComponent("model.json"))
        try manifestData.write(to: out.appendingPathComponent("model.json"))
        let manifest = try ModelManifest.decode(manifestData, source: "model.json")
        let weights = try SafeTensors(contentsOf: directory.appendingPathComponent("model.safetensors").path)
        var writer = SafeTensorsWriter()
        var projectedNames: Set<String> = []
        for (i, layer) in manifest.layers.enumerated() {
            guard case .linear(let spec) = layer else { continue }
            let shape = try weights.info(named: spec.weight).shape
            var w = try weights.tensor(named: spec.weight)
            if case let .l1inf(groups, radius, ratio) = L1InfCompaction.unpinned(plan.method(forLayer: layer.name ?? "layers[\(i)]")) {
                w = L1InfProjection.project(w, rows: shape[0], columns: shape[1], groups: groups, radius: radius, radiusRatio: ratio)
            }
            try writer.add(spec.weight, floats: w, shape: shape)
            projectedNames.insert(spec.weight)
        }
        for name in weights.names where !projectedNames.contains(name) {
            try writer.add(name, floats: try weights.tensor(named: name), shape: try weights.info(named: name).shape)
        }
        try writer.write(to: out.appendingPathComponent("model.safetensors").path)
        return out
    }

    /// Cross-layer compaction on the digits MLP: neurons vanished by a row projection are dropped
    /// with the next layer's matching columns (their constant folded into its bias), inputs
    /// vanished by a column projection are dropped with the previous layer's neurons (or gathered
    /// at the model input). The compacted model equals the dense model on the projected weights
    /// over the whole test split, and its layers run on the smaller shapes.
    func testDigitsCompactedEqualsDenseOnProjectedWeights() throws {
        let split = try SafeTensors(contentsOf: digitsDirectory.appendingPathComponent("test.safetensors").path)
        let inputs = try split.tensor(named: "inputs")
        let n = try split.int64Tensor(named: "labels").count
        let x = Matrix(rows: n, columns: 64, values: inputs)
        func rows(_ ratio: Double) -> LayerCompression { .l1inf(groups: .rows, radius: nil, radiusRatio: ratio) }
        func columns(_ ratio: Double) -> LayerCompression { .l1inf(groups: .columns, radius: nil, radiusRatio: ratio) }
        // (plan, expected storage prefix per layer)
        let cases: [(CompressionPlan, [String])] = [
            // fc1's vanished neurons leave fc1 and fc2's inputs; fc2's leave fc2 and fc3's inputs.
            (CompressionPlan(method: .dense, overrides: [("fc1", rows(0.2)), ("fc2", rows(0.1))]),
             ["l1inf rows: dense ", "l1inf rows: dense ", "dense 10x"]),
            // fc2's and fc3's vanished inputs drop fc1's and fc2's neurons; fc1's are gathered.
            (CompressionPlan(method: .dense, overrides: [("fc1", columns(0.9)), ("fc2", columns(0.1)), ("fc3", columns(0.1))]),
             ["l1inf columns: dense ", "l1inf columns: dense ", "l1inf columns: dense "]),
            // every layer, the last one scattering its dropped logits before the softmax.
            (CompressionPlan(method: .pinned(rows(0.1))), ["l1inf rows: dense ", "l1inf rows: dense ", "l1inf rows: dense "]),
        ]
        for (plan, prefixes) in cases {
            let compacted = try XCTUnwrap(try ModelLoader.load(directory: digitsDirectory.path, compression: plan, compressor: WeightCompressor()) as? MLPModel)
            let reference = try XCTUnwrap(try ModelLoader.load(directory: try projectedCopy(of: digitsDirectory, plan: plan).path) as? MLPModel)
            let got = compacted.forward(x).values, want = reference.forward(x).values
            let maxError = zip(got, want).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(maxError, 1e-6, "\(plan.method)")
            // batch of one row (GEMV path) too
            for row in [0, n / 2] {
                let one = compacted.forward(Matrix(rows: 1, columns: 64, values: Array(inputs[(row * 64)..<((row + 1) * 64)])))
                for j in 0..<10 { XCTAssertEqual(one.values[j], want[row * 10 + j], accuracy: 1e-6) }
            }
            let layers = compacted.summary.layers.filter { $0.storage != nil }
            let storages = layers.map { $0.storage! }
            for (storage, prefix) in zip(storages, prefixes) { XCTAssertTrue(storage.hasPrefix(prefix), "\(storage) vs \(prefix)") }
            // The reported shapes shrink where neurons vanished, and the parameters with them.
            let shapes = try storages.map { s -> (Int, Int) in
                let m = try XCTUnwrap(s.firstMatch(of: /dense (\d+)x(\d+) of/), s)
                return (Int(m.1)!, Int(m.2)!)
            }
            XCTAssertLessThan(shapes[0].0, 256, "\(storages)")
            XCTAssertEqual(shapes[1].1, shapes[0].0, "fc2 reads exactly fc1's kept neurons")
            XCTAssertLessThan(shapes[1].0, 256, "\(storages)")
            XCTAssertEqual(shapes[2].1, shapes[1].0, "fc3 reads exactly fc2's kept neurons")
            XCTAssertLessThan(compacted.summary.density, 0.9)
            XCTAssertEqual(compacted.summary.layers.map(\.outputFeatures), [256, 256, 10, 10], "the model's layers keep their logical shape")
            print("compacted digits \(plan.overrides.map { "\($0.pattern): \($0.method)" }) \(plan.method): \(storages), max |Δp| \(maxError)")
        }
    }

    /// A synthetic chain with GELU, a stand-alone tanh and a neighbour of another method: dropped
    /// neurons fold through both activations, and next to a non-compactable layer the ℓ1,∞ layer
    /// scatters its constants instead.
    func testChainWithActivationsAndOtherMethods() throws {
        var rng = SplitMix(seed: 11)
        let dir = try makeTemporaryDirectory()
        let sizes = [24, 32, 32, 16]
        var writer = SafeTensorsWriter()
        for l in 0..<3 {
            try writer.add("w\(l)", floats: (0..<(sizes[l + 1] * sizes[l])).map { _ in Float(rng.normal()) }, shape: [sizes[l + 1], sizes[l]])
            try writer.add("b\(l)", floats: (0..<sizes[l + 1]).map { _ in Float(rng.normal()) }, shape: [sizes[l + 1]])
        }
        try writer.write(to: dir.appendingPathComponent("model.safetensors").path)
        try Data("""
        {"architecture": "mlp", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 24]}],
         "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 16]}],
         "layers": [{"name": "a", "type": "linear", "weight": "w0", "bias": "b0", "activation": "gelu"},
                    {"type": "activation", "activation": "tanh"},
                    {"name": "b", "type": "linear", "weight": "w1", "bias": "b1", "activation": "sigmoid"},
                    {"name": "c", "type": "linear", "weight": "w2", "bias": "b2"}]}
        """.utf8).write(to: dir.appendingPathComponent("model.json"))
        let x = Matrix(rows: 9, columns: 24, values: (0..<(9 * 24)).map { _ in Float(rng.normal()) })
        let rows = LayerCompression.l1inf(groups: .rows, radius: nil, radiusRatio: 0.1)
        // (plan, the same plan for the projected copy, whether fc "b" folds "a"'s dropped neurons)
        let cases: [(CompressionPlan, CompressionPlan, Bool)] = [
            (CompressionPlan(method: .dense, overrides: [("a", rows), ("b", rows)]), .dense, true),
            (CompressionPlan(method: .pinned(.nm(n: 2, m: 4)), overrides: [("a", rows)]),
             CompressionPlan(method: .pinned(.nm(n: 2, m: 4)), overrides: [("a", .dense)]), false),
        ]
        for (plan, referencePlan, expectFold) in cases {
            let compacted = try XCTUnwrap(try ModelLoader.load(directory: dir.path, compression: plan, compressor: WeightCompressor()) as? MLPModel)
            let reference = try XCTUnwrap(try ModelLoader.load(directory: try projectedCopy(of: dir, plan: plan).path,
                                                               compression: referencePlan, compressor: WeightCompressor()) as? MLPModel)
            let got = compacted.forward(x).values, want = reference.forward(x).values
            for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
            let storage = compacted.summary.layers.compactMap(\.storage)
            XCTAssertEqual(storage[1].contains("folded into the bias"), expectFold, "\(storage)")
            XCTAssertEqual(storage[0].contains("output activation(bias)"), !expectFold, "\(storage)")
            print("chain \(plan.method) \(plan.overrides.map(\.pattern)): \(storage)")
        }
    }
}
