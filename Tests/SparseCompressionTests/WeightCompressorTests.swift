import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
import SparseModels
@testable import SparseCompression

final class WeightCompressorTests: XCTestCase {
    var digitsDirectory: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    func testGlobPatterns() {
        XCTAssertTrue(CompressionPlan.matches("encoder.3.ffn.up", pattern: "encoder.*.ffn.*"))
        XCTAssertTrue(CompressionPlan.matches("fc1", pattern: "fc*"))
        XCTAssertTrue(CompressionPlan.matches("fc1", pattern: "*"))
        XCTAssertTrue(CompressionPlan.matches("classifier", pattern: "classifier"))
        XCTAssertFalse(CompressionPlan.matches("classifier2", pattern: "classifier"))
        XCTAssertFalse(CompressionPlan.matches("encoder.3.attn.q", pattern: "encoder.*.ffn.*"))
        XCTAssertTrue(CompressionPlan.matches("", pattern: "*"))
    }

    /// A compressed MLP computes exactly what a dense MLP on the pruned weights computes.
    func testCompressedDigitsEqualsDenseOnPrunedWeights() throws {
        let split = try SafeTensors(contentsOf: repositoryRoot().appendingPathComponent("models/digits-mlp/test.safetensors").path)
        let inputs = try split.tensor(named: "inputs")
        let labels = try split.int64Tensor(named: "labels")
        let n = labels.count
        let x = Matrix(rows: n, columns: 64, values: inputs)
        for plan in [CompressionPlan(method: .pinned(.nm(n: 2, m: 4))),
                     CompressionPlan(method: .pinned(.csr(density: 0.3)), overrides: [("fc3", .dense)]),
                     CompressionPlan(method: .nm(n: 1, m: 4), overrides: [("*", .pinned(.nm(n: 4, m: 8)))])] {
            let model = try XCTUnwrap(try ModelLoader.load(directory: digitsDirectory, compression: plan, compressor: WeightCompressor()) as? MLPModel)
            let summary = model.summary
            let linear = summary.layers.filter { $0.storage != nil }
            XCTAssertEqual(linear.count, 3)
            XCTAssertLessThan(summary.density, 0.9, "\(plan.method)")
            for layer in linear where layer.storage != "dense" {
                XCTAssertGreaterThan(layer.relativeError ?? 0, 0)
                XCTAssertLessThan(layer.relativeError ?? 1, 1)
            }
            // batch of 1 (GEMV path) and the whole split (GEMM path) agree row by row
            let whole = model.forward(x)
            for row in [0, 7, n - 1] {
                let one = model.forward(Matrix(rows: 1, columns: 64, values: Array(inputs[(row * 64)..<((row + 1) * 64)])))
                for j in 0..<10 { XCTAssertEqual(one.values[j], whole.values[row * 10 + j], accuracy: 1e-5) }
            }
            let predicted = (0..<n).map { r in (0..<10).max { whole.values[r * 10 + $0] < whole.values[r * 10 + $1] }! }
            let accuracy = Double(zip(predicted, labels).filter { Int64($0) == $1 }.count) / Double(n)
            print("digits-mlp \(plan.method) (overrides \(plan.overrides.map(\.pattern))): density \(summary.density), accuracy \(accuracy)")
            XCTAssertGreaterThan(accuracy, 0.3, "far above chance (0.1)")
        }
        let dense = try XCTUnwrap(try ModelLoader.load(directory: digitsDirectory) as? MLPModel)
        XCTAssertEqual(dense.summary.density, 1, accuracy: 1e-9)
    }

    /// Unpinned, each compressed layer is timed against the dense form of the same weights and the
    /// faster one runs; either way the outputs are those of the compressed weights.
    func testUnpinnedLayersRunTheFasterForm() throws {
        let pinned = try XCTUnwrap(try ModelLoader.load(directory: digitsDirectory, compression: CompressionPlan(method: .pinned(.nm(n: 2, m: 4))), compressor: WeightCompressor()) as? MLPModel)
        let timed = try XCTUnwrap(try ModelLoader.load(directory: digitsDirectory, compression: CompressionPlan(method: .nm(n: 2, m: 4)), compressor: WeightCompressor()) as? MLPModel)
        for layer in timed.summary.layers where layer.storage != nil {
            let storage = layer.storage!
            XCTAssertTrue(storage == "nm 2:4" || storage.hasPrefix("dense (nm 2:4 timed slower"), storage)
            XCTAssertGreaterThan(layer.relativeError ?? 0, 0, "the weights are the compressed ones either way")
        }
        var rng = SplitMix(seed: 2)
        let x = Matrix(rows: 5, columns: 64, values: (0..<320).map { _ in Float(abs(rng.normal()) * 8) })
        let a = pinned.forward(x).values, b = timed.forward(x).values
        for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-5) }
    }

    /// A per-layer pattern that matches no layer fails the load, naming the pattern and the layers.
    func testPatternMatchingNoLayerIsAnError() throws {
        let typo = CompressionPlan(method: .dense, overrides: [("fc*", .nm(n: 2, m: 4)), ("classifier", .dense)])
        XCTAssertThrowsError(try ModelLoader.load(directory: digitsDirectory, compression: typo, compressor: WeightCompressor())) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("compression.layers.classifier") && message.contains("matches no layer")
                          && message.contains("fc1, fc2, fc3"), message)
        }
        XCTAssertNoThrow(try ModelLoader.load(directory: digitsDirectory,
                                              compression: CompressionPlan(method: .dense, overrides: [("fc3", .dense)]), compressor: WeightCompressor()))
    }

    /// Piecewise-linear activations are a bert-encoder option; other architectures refuse them by name.
    func testPiecewiseLinearActivationsRefusedForMLP() {
        XCTAssertThrowsError(try ModelLoader.load(directory: digitsDirectory, compression: CompressionPlan(activations: .pwl(segments: 32)), compressor: WeightCompressor())) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("model.json") && message.contains("bert-encoder models only") && message.contains("'mlp'"), message)
        }
    }
}
