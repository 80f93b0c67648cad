import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// Recovery training: gradients of every stored form against finite differences, structure kept
/// exactly (N:M and transposable masks, BLAST factors, CSR pattern, ℓ1,∞ compaction), divergence,
/// interruption and refusals.
final class RecoveryTrainingTests: XCTestCase {
    var digits: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    /// A chain over every trainable form: N:M 2:4, BLAST (b = 2, r = 3), a compacted layer with
    /// gather and scatter, CSR; ReLU and GELU in between.
    func smallChain() throws -> TrainableChain {
        var rng = SeededRandom(seed: 3)
        let nm = try TrainableTestLayers.nm(&rng, outputs: 8, inputs: 8)
        let blast = TrainableTestLayers.blast(&rng, outputs: 8, inputs: 8, blocks: 2, rank: 3)
        let compaction = PackedLayer.Compaction(method: "l1inf", weight: rng.array(4 * 3), inputWidth: 8, outputWidth: 8, gather: [0, 2, 5],
                                                scatterKept: [1, 3, 4, 6], scatterDropped: [0, 2, 5, 7], scatterConstants: [0.5, -0.25, 1, 0], storage: "test")
        let compacted = PackedLayer(outputFeatures: 8, inputFeatures: 8, form: .compacted(compaction), bias: rng.array(4))
        let csr = PackedLayer(outputFeatures: 4, inputFeatures: 8, form: .csr(rowStart: [0, 3, 3, 5, 8], columns: [0, 4, 7, 1, 2, 3, 5, 6], values: rng.array(8)),
                              bias: rng.array(4))
        return TrainableChain([.init(layer: try TrainableLinear(nm), activation: .relu), .init(layer: try TrainableLinear(blast), activation: .gelu),
                               .init(layer: try TrainableLinear(compacted), activation: .gelu), .init(layer: try TrainableLinear(csr), activation: .none)])
    }

    func testGradientsMatchFiniteDifferences() throws {
        let chain = try smallChain()
        var rng = SeededRandom(seed: 7)
        let rows = 5, x = rng.array(rows * 8).map { 2 * $0 }, teacher = rng.array(rows * 4).map { 3 * $0 }
        let labels: [Int32] = [0, 3, 1, 2, 3]
        func loss(_ grad: inout [Float], keep: Bool) -> Double {
            let out = chain.forward(x, rows: rows, keep: keep)
            return TrainingKernels.distillationLoss(logits: out, teacher: teacher, labels: labels, rows: rows, cols: 4, alpha: 0.5, temperature: 2, gradient: &grad)!
        }
        var grad = [Float](repeating: 0, count: rows * 4)
        _ = loss(&grad, keep: true)
        chain.backward(grad)
        var checked = 0
        for (t, tensor) in chain.tensors.enumerated() {
            for i in stride(from: 0, to: tensor.values.count, by: max(1, tensor.values.count / 6)) where tensor.mask?[i] ?? 1 == 1 {
                let saved = tensor.values[i], h: Float = 1e-2
                tensor.values[i] = saved + h
                chain.stages.forEach { $0.layer.materialize() }
                let plus = loss(&grad, keep: false)
                tensor.values[i] = saved - h
                chain.stages.forEach { $0.layer.materialize() }
                let minus = loss(&grad, keep: false)
                tensor.values[i] = saved
                chain.stages.forEach { $0.layer.materialize() }
                let numeric = (plus - minus) / Double(2 * h)
                XCTAssertEqual(Double(tensor.gradient[i]), numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "tensor \(t) element \(i)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 40)
    }

    /// Random inputs without labels: the teacher's logits alone drive the training.
    func unlabelledSamples(count: Int) throws -> String {
        let dir = try makeTemporaryDirectory()
        var rng = SeededRandom(seed: 11)
        var writer = SafeTensorsWriter()
        let x = rng.array(count * 64).map { 8 + 8 * $0 }
        try writer.add("inputs", floats: x, shape: [count, 64])
        let path = dir.appendingPathComponent("train.safetensors").path
        try writer.write(to: path)
        return path
    }

    func recover(_ plan: CompressionPlan, options: RecoveryOptions, stop: @escaping () -> Bool = { false }) throws
        -> (before: [String: PackedLayer], result: RecoveredLayers) {
        let (_, builder) = try ModelLoader.open(directory: digits, compression: plan, compressor: WeightCompressor(), timeLayers: false)
        let before = Dictionary(uniqueKeysWithValues: builder!.built.map { ($0.name, $0.layer.packed) })
        let result = try ClassifierRecovery.recover(directory: digits, builder: builder!, training: try unlabelledSamples(count: 96), heldOut: nil,
                                                    options: options, progress: { _ in }, shouldStop: stop)
        return (before, result)
    }

    var shortRun: RecoveryOptions { TrainableTestLayers.options(epochs: 2, batchSize: 32, learningRate: 1e-2) }

    func testMasksStayExactlyNMAndTransposable() throws {
        for plan in [CompressionPlan(method: .nm(n: 2, m: 4)), CompressionPlan(method: .transposableNM(n: 2, m: 4), overrides: [("fc3", .dense)])] {
            let (before, result) = try recover(plan, options: shortRun)
            XCTAssertEqual(result.report.outcome, .completed)
            for (name, old) in before {
                guard case let .nm(n, m, transposable, oldValues, oldWords) = old.form else { continue }
                let new = try XCTUnwrap(result.layers[name])
                guard case let .nm(n2, m2, t2, values, words) = new.form else { return XCTFail("\(name) lost its N:M form") }
                XCTAssertEqual([n2, m2], [n, m])
                XCTAssertEqual(t2, transposable)
                XCTAssertEqual(words, oldWords, "\(name): the index stream (the mask) changed")
                XCTAssertNotEqual(values, oldValues, "\(name): training changed nothing")
                let op = try XCTUnwrap(try new.makeOperator() as? NMWeights)  // checks exactly n per group
                if transposable {
                    XCTAssertNil(PackedLayer.transposableProblem(op.keptMask(), rows: new.outputFeatures, columns: new.inputFeatures, n: n, m: m))
                }
            }
        }
    }

    func testBlastCsrAndCompactionKeepTheirStructure() throws {
        let plans = [
            CompressionPlan(method: .blast(blocks: 4, rank: nil, parameterRatio: 0.5, iterations: 10), overrides: [("fc3", .dense)]),
            CompressionPlan(method: .csr(density: 0.3)),
            CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .columns, radius: nil, radiusRatio: 0.5))]),
            CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.16)), ("fc2", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.16))]),
        ]
        for plan in plans {
            let (before, result) = try recover(plan, options: shortRun)
            for (name, old) in before {
                let new = try XCTUnwrap(result.layers[name])
                XCTAssertEqual(new.layout, old.layout, "\(name)")
                switch (old.form, new.form) {
                case let (.blast(_, _, _, u0, v0, s0), .blast(_, _, _, u, v, s)):
                    XCTAssertEqual([u.count, v.count, s.count], [u0.count, v0.count, s0.count])
                    XCTAssertNotEqual(u, u0, "\(name): U not trained")
                    XCTAssertNotEqual(s, s0, "\(name): s not trained")
                case let (.csr(r0, c0, v0), .csr(r, c, v)):
                    XCTAssertEqual(r, r0)
                    XCTAssertEqual(c, c0)
                    XCTAssertNotEqual(v, v0)
                case let (.compacted(c0), .compacted(c)):
                    XCTAssertEqual(c.gather, c0.gather)
                    XCTAssertEqual(c.scatterKept, c0.scatterKept)
                    XCTAssertEqual(c.scatterConstants, c0.scatterConstants)
                    XCTAssertEqual(c.weight.count, c0.weight.count)
                    XCTAssertNotEqual(c.weight, c0.weight)
                default:
                    break
                }
                _ = try new.makeOperator()
            }
        }
    }

    /// `CompressedArtifact.write` with the recovery rewrite: the artifact holds the trained layers
    /// (neurons dropped by ℓ1,∞ rows included) and the report, and loads back.
    func testArtifactHoldsTheTrainedLayersAndTheReport() throws {
        let dir = try makeTemporaryDirectory()
        let training = try unlabelledSamples(count: 64), out = dir.appendingPathComponent("artifact").path
        let plan = CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.16)), ("fc2", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.16))])
        var trained: [String: PackedLayer] = [:]
        _ = try ArtifactWriter.write(source: digits, plan: plan, compressionJSON: #"{"method": "dense"}"#, toolVersion: "t", output: out) { builder in
            let result = try ClassifierRecovery.recover(directory: self.digits, builder: builder, training: training, heldOut: self.digits + "/test.safetensors",
                                                        options: self.shortRun, progress: { _ in }, shouldStop: { false })
            trained = result.layers
            return (result.layers, result.tensors, try RecoveryReport.json(result.report))
        }
        let file = try SafeTensors(contentsOf: out + "/model.safetensors")
        let report = try JSONDecoder().decode(RecoveryReport.self, from: Data(try XCTUnwrap(file.metadata["recovery"]).utf8))
        XCTAssertEqual(report.outcome, .completed)
        XCTAssertEqual(report.heldOut?.samples, 450)
        guard case .compacted(let c) = trained["fc1"]?.form else { return XCTFail("fc1 is not compacted") }
        XCTAssertEqual(try file.tensor(named: "fc1.l1inf.weight"), c.weight)
        XCTAssertEqual(try file.tensor(named: "fc1.l1inf.bias").count, c.weight.count / 64)
        _ = try ModelLoader.load(directory: out)
    }

    func testDivergingRunStopsAndKeepsTheLastGoodWeights() throws {
        var options = shortRun
        options.learningRate = 1e30
        options.warmupFraction = 0
        let (_, result) = try recover(CompressionPlan(method: .nm(n: 2, m: 4)), options: options)
        XCTAssertEqual(result.report.outcome, .diverged)
        XCTAssertTrue(result.report.note?.contains("diverged") == true, result.report.note ?? "")
        XCTAssertLessThan(result.report.steps, result.report.stepsPlanned)
        for (name, layer) in result.layers {
            guard case let .nm(_, _, _, values, _) = layer.form else { continue }
            XCTAssertTrue(values.allSatisfy(\.isFinite), "\(name) kept non-finite weights")
            _ = try layer.makeOperator()
        }
    }

    func testInterruptedRunStopsAfterTheCurrentStep() throws {
        var calls = 0
        let (_, result) = try recover(CompressionPlan(method: .nm(n: 2, m: 4)), options: shortRun, stop: {
            calls += 1
            return calls > 2
        })
        XCTAssertEqual(result.report.outcome, .interrupted)
        XCTAssertEqual(result.report.steps, 2)
    }

    func testRefusals() throws {
        let (_, dense) = try ModelLoader.open(directory: digits, compression: .dense, timeLayers: false)
        assertError(try ClassifierRecovery.recover(directory: digits, builder: dense!, training: try unlabelledSamples(count: 4), heldOut: nil,
                                                   options: shortRun, progress: { _ in }, shouldStop: { false }),
                    contains: ["nothing to recover", "dense"])
        let (_, nm) = try ModelLoader.open(directory: digits, compression: CompressionPlan(method: .nm(n: 2, m: 4)), compressor: WeightCompressor(), timeLayers: false)
        assertError(try ClassifierRecovery.recover(directory: digits, builder: nm!, training: digits + "/model.safetensors", heldOut: nil,
                                                   options: shortRun, progress: { _ in }, shouldStop: { false }),
                    contains: ["model.safetensors", "no tensor 'inputs'"])
    }
}
