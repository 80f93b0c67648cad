import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// Building the student and teacher of a sequential classifier and recovery runs on GunPoint: N:M
/// masks and BLAST structure kept exactly, the artifact loads, samples in PyTorch's layout, refusals.
final class TrainableSequenceModelsTests: XCTestCase {
    var timeseries: String { GunPoint.directory }

    var shortRun: RecoveryOptions { TrainableTestLayers.options(epochs: 20, batchSize: 16, learningRate: 5e-3) }

    func recover(_ plan: CompressionPlan) throws -> (before: [String: PackedLayer], result: RecoveredLayers) {
        let (_, builder) = try GunPoint.open(plan)
        let before = Dictionary(uniqueKeysWithValues: builder.built.map { ($0.name, $0.layer.packed) })
        let result = try ClassifierRecovery.recover(directory: timeseries, builder: builder, training: timeseries + "/calibration.safetensors",
                                                    heldOut: timeseries + "/test.safetensors", options: shortRun, progress: { _ in },
                                                    shouldStop: { false })
        return (before, result)
    }

    func testRecoveryKeepsNMMasksExactly() throws {
        let (before, result) = try recover(GunPoint.convNM)
        XCTAssertEqual(result.report.outcome, .completed)
        XCTAssertEqual(result.report.trainingSamples, 50)
        XCTAssertEqual(result.report.heldOut?.samples, 150)
        XCTAssertLessThan(try XCTUnwrap(result.report.lastLoss), try XCTUnwrap(result.report.firstLoss))
        for name in ["conv1", "conv2", "conv3"] {
            guard case let .nm(n, m, _, oldValues, oldWords) = try XCTUnwrap(before[name]).form,
                  case let .nm(n2, m2, _, values, words) = try XCTUnwrap(result.layers[name]).form else { return XCTFail("\(name) is not N:M") }
            XCTAssertEqual([n2, m2], [n, m])
            XCTAssertEqual(words, oldWords, "\(name): the mask changed")
            XCTAssertNotEqual(values, oldValues, "\(name): training changed nothing")
            _ = try XCTUnwrap(try result.layers[name]!.makeOperator() as? NMWeights)  // exactly n per group
        }
    }

    func testRecoveryKeepsBlastStructure() throws {
        let (before, result) = try recover(GunPoint.convBlast)
        for name in ["conv1", "conv2", "conv3"] {
            guard case let .blast(b1, b2, r, u0, v0, s0) = try XCTUnwrap(before[name]).form,
                  case let .blast(c1, c2, q, u, v, s) = try XCTUnwrap(result.layers[name]).form else { return XCTFail("\(name) is not BLAST") }
            XCTAssertEqual([c1, c2, q], [b1, b2, r])
            XCTAssertEqual([u.count, v.count, s.count], [u0.count, v0.count, s0.count])
            XCTAssertNotEqual(u, u0, "\(name): U not trained")
            XCTAssertNotEqual(s, s0, "\(name): s not trained")
        }
        XCTAssertEqual(result.layers["fc"]?.layout, .dense)
    }

    /// The recovered layers written as an artifact load back as a sequential model that computes
    /// what the trained layers compute.
    func testRecoveredArtifactLoads() throws {
        let dir = try makeTemporaryDirectory()
        let out = dir.appendingPathComponent("artifact").path
        var report: RecoveryReport?
        _ = try ArtifactWriter.write(source: timeseries, plan: GunPoint.convNM, compressionJSON: #"{"method": "dense"}"#, toolVersion: "t", output: out) { builder in
            let result = try ClassifierRecovery.recover(directory: self.timeseries, builder: builder, training: self.timeseries + "/calibration.safetensors",
                                                        heldOut: self.timeseries + "/test.safetensors", options: self.shortRun, progress: { _ in },
                                                        shouldStop: { false })
            report = result.report
            return (result.layers, result.tensors, try RecoveryReport.json(result.report))
        }
        let model = try XCTUnwrap(try ModelLoader.load(directory: out) as? SequentialModel)
        let split = try SafeTensors(contentsOf: timeseries + "/test.safetensors")
        let labels = try split.int64Tensor(named: "labels", shape: [150])
        let out2 = model.forward(Matrix(rows: 150, columns: 150, values: try split.tensor(named: "inputs")))
        let accuracy = Double(zip(MLPModel.argmaxRows(out2), labels).filter { $0 == $1 }.count) / 150
        XCTAssertEqual(accuracy, try XCTUnwrap(report?.heldOut?.recovered), accuracy: 1.5 / 150)
        XCTAssertNotNil(model.summary.artifact?.recovery)
    }

    func testSamplesInThePyTorchLayoutAreRead() throws {
        let samples = try LabelledSamples(path: timeseries + "/test.safetensors", features: 150, classes: 2, channels: 1)
        XCTAssertEqual(samples.count, 150)
        assertError(try LabelledSamples(path: timeseries + "/test.safetensors", features: 150, classes: 2, channels: 2),
                    contains: ["test.safetensors", "inputs", "[150, 1, 150]", "[n, 2, 75]"])
    }

    func testASoftmaxBeforeTheLastLayerIsRefused() throws {
        let dir = try makeTemporaryDirectory()
        let model = dir.appendingPathComponent("model")
        try FileManager.default.copyItem(atPath: timeseries, toPath: model.path)
        let manifestPath = model.appendingPathComponent("model.json").path
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as? [String: Any])
        var layers = try XCTUnwrap(json["layers"] as? [[String: Any]])
        layers.append(["name": "after", "type": "activation", "activation": "relu"])
        json["layers"] = layers
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: manifestPath))
        let (_, builder) = try ModelLoader.open(directory: model.path, compression: GunPoint.convNM, compressor: WeightCompressor(), timeLayers: false)
        assertError(try ClassifierRecovery.recover(directory: model.path, builder: try XCTUnwrap(builder), training: timeseries + "/calibration.safetensors",
                                                   heldOut: nil, options: shortRun, progress: { _ in }, shouldStop: { false }),
                    contains: ["layer 'softmax'", "a softmax before the last layer cannot be trained"])
    }
}
