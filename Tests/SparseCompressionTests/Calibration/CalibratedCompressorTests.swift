import Foundation
import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Layer-by-layer calibrated compression of the digits MLP on its training split, judged on the
/// held-out test split it never saw.
final class CalibratedCompressorTests: XCTestCase {
    static let digits = repositoryRoot().appendingPathComponent("models/digits-mlp").path

    static func quality(_ plan: CompressionPlan, _ options: CalibrationOptions) throws -> (HeldOutQuality, ModelSummary) {
        let compressor = try CalibratedCompressor.run(modelDirectory: digits, plan: plan, options: options)
        XCTAssertEqual(compressor.report.samples, options.samples)
        let (model, _) = try ModelLoader.open(directory: digits, compression: plan, compressor: compressor, timeLayers: false)
        let (dense, _) = try ModelLoader.open(directory: digits, timeLayers: false)
        let quality = try HeldOutQuality.measure(compressed: model, dense: dense, path: digits + "/test.safetensors")
        return (quality, try XCTUnwrap(ModelLoader.summary(of: model)))
    }

    func testNMAndTransposableKeepAccuracyAndExactMasks() throws {
        let fc3Dense = [(pattern: "fc3", method: LayerCompression.dense)]
        for (plan, check) in [(CompressionPlan(method: .pinned(.nm(n: 2, m: 4))), "exactly 2 of every 4"),
                              (CompressionPlan(method: .pinned(.transposableNM(n: 2, m: 4)), overrides: fc3Dense), "per column")] {
            let (quality, summary) = try Self.quality(plan, CalibrationOptions(samples: 512))
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(quality.accuracy), 0.95, "\(plan.method): \(quality.summary)")
            for layer in summary.layers where layer.name != "softmax" && !(layer.name == "fc3" && check == "per column") {
                XCTAssertTrue(layer.compression?.maskCheck?.contains(check) == true, "\(layer.name): \(String(describing: layer.compression?.maskCheck))")
            }
        }
    }

    func testCalibratedBeatsWeightOnlyAndRefitHelps() throws {
        let plan = CompressionPlan(method: .pinned(.nm(n: 2, m: 4)))
        let magnitude = try Self.quality(plan, CalibrationOptions(samples: 256, saliency: .magnitude, refit: false)).0
        let hessian = try Self.quality(plan, CalibrationOptions(samples: 256, saliency: .hessian, refit: false)).0
        XCTAssertGreaterThan(try XCTUnwrap(hessian.agreement), try XCTUnwrap(magnitude.agreement) + 0.05)
        let blast = try Self.quality(CompressionPlan(method: .pinned(.blast(blocks: 4, rank: nil, parameterRatio: 0.5, iterations: 20)),
                                                overrides: [(pattern: "fc3", method: .dense)]), CalibrationOptions(samples: 256)).0
        XCTAssertGreaterThan(try XCTUnwrap(blast.accuracy), 0.9, blast.summary)
    }

    /// int8 weights rounded by GPTQ on the training split keep the digits accuracy that rounding
    /// to nearest loses (fc1 folds the input standardisation into its columns: a few huge columns
    /// set every row's scale), per channel and as W8A8, and the layers are stored quantized.
    func testGPTQRoundingKeepsDigitsAccuracy() throws {
        for scheme in [WeightQuantization.int8(.channel), .int8Dynamic] {
            let plan = CompressionPlan(method: .quantized(.dense, scheme))
            let (gptq, summary) = try Self.quality(plan, CalibrationOptions(samples: 512))
            let (nearest, _) = try Self.quality(plan, CalibrationOptions(samples: 512, rounding: .nearest))
            let dense = try XCTUnwrap(gptq.denseAccuracy)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(gptq.accuracy), dense - 0.005, "\(scheme): \(gptq.summary)")
            XCTAssertGreaterThan(try XCTUnwrap(gptq.accuracy), try XCTUnwrap(nearest.accuracy), "\(scheme): nearest \(nearest.summary)")
            for layer in summary.layers where layer.name.hasPrefix("fc") {
                XCTAssertEqual(layer.compression?.parameters["weights"], .string("int8"), layer.name)
            }
        }
    }
}
